#!/usr/bin/env bash
# Regenerate every benchmark table and plot of docs/results/ in one command:
#
#     bash benchmarks/run_all.sh                                  # everything (~50 min)
#     BENCHES="step_cost memory scaling" bash benchmarks/run_all.sh   # cost only (~10 min)
#     BENCHES=head_study bash benchmarks/run_all.sh   # the head study (~80 min)
#     BENCHES=allocator bash benchmarks/run_all.sh    # page faults per step, glibc (~1 min)
#     BENCHES=recipe_study bash benchmarks/run_all.sh # the recipe study, its SGD/SGDT core (~3 h)
#     BENCHES=recipe_study_full bash benchmarks/run_all.sh  # every part of it (~19 h)
#
# Installs the pinned stack (tools/install.sh) plus the benchmark-only extras
# (requirements-bench.txt: Brevitas), then runs, in this order so the timing benchmarks
# do not share the machine with training: step_cost, memory, scaling, accuracy. Each
# table goes to docs/results/<name>.txt under a header saying how it was measured.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/install.sh
PY="$ROOT/.venv/bin/python"
"$PY" -m pip install --disable-pip-version-check -q -r requirements-bench.txt \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
OUT="docs/results"  # relative: it is printed in the result headers
mkdir -p "$OUT"

run() {  # run NAME CMD...: stdout -> $OUT/NAME.txt with a header
  local name="$1"; shift
  echo "[run_all] $name: $*"
  local t0=$SECONDS
  {
    echo "# command: ${*#$ROOT/.venv/bin/}"
    echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git describe --always --dirty 2>/dev/null || echo none)"
    echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    # cost ratios depend on the CPU's vector extensions (AVX2/AVX-512/AMX/VNNI)
    echo "# vector extensions: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(sse4_2|avx|fma|f16c|amx)' | sort | xargs)"
    "$@" 2> >(grep -v -i "warn" >&2) | grep -v " - mmengine - "
  } > "$OUT/$name.txt"
  echo "[run_all] $name done in $((SECONDS - t0)) s -> $OUT/$name.txt"
  tail -n +5 "$OUT/$name.txt"
}

BENCHES="${BENCHES:-step_cost memory scaling accuracy}"
want() { [[ " $BENCHES " == *" $1 "* ]]; }
want step_cost && run step_cost "$PY" benchmarks/step_cost.py --iters 20 --batch 8 --size 256
want memory && run memory "$PY" benchmarks/memory.py --iters 10 --batch 8 --size 256 --repeats 3
want scaling && run scaling "$PY" benchmarks/scaling.py --iters 5 --plot "$OUT/scaling.png"
want allocator && run allocator "$PY" benchmarks/allocator.py --workload qat_sgd --steps 6 --threads 1
if want accuracy; then
  echo "[run_all] accuracy study (3 seeds x FP, W4A4/W3A3 SGD at 3 LRs and SGDT; ~41 min; resumable)"
  "$PY" benchmarks/accuracy.py --out "$OUT" 2> >(grep -v -i "warn" >&2)
fi
if want head_study; then  # not in the default set: ~80 min on 2 cores
  echo "[run_all] head study (3 seeds x both heads x FP, W4A4/W3A3 SGD/SGDT; resumable)"
  "$PY" benchmarks/head_study.py --out "$OUT" 2> >(grep -v -i "warn" >&2)
fi
if want recipe_study || want recipe_study_full; then
  # docs/results.md, "The recipe study's regenerating command" (not in the default set;
  # about 3 h from nothing on 2 cores, measured on an Intel Xeon):
  # the light model at W3A3 from a converged FP start (6000 iterations), SGD and SGDT each
  # on a 3x3 grid over its two knobs (an edge optimum extends that axis for both), the FP
  # model fine-tuned with the QAT schedule, 3 paired seeds, the replay and warm-up
  # controls, and the selections at twice the length. What the ~4 h budget cuts is the
  # rest of the study, recipe_study_full below.
  "$PY" benchmarks/recipe_study.py --out "$OUT" --grid SGD:81,243,729:1/27,1/9,1/3 \
    --name recipe_study_sgd_sgdt 2> >(grep -v -i "warn" >&2)
fi
if want recipe_study_full; then  # not in the default set: about 19 h on 2 cores from nothing
  # docs/results.md, "The shipped recipe": the light model at W3A3 with all eight methods,
  # the two-knob FP reference (FP-SGD, FP-Adam: about 95 min) and the 900- and
  # 1800-iteration checks (about 10 h, its FP start included; SGD and SGDT alone at 450
  # and 900 about 3.5 h); SGD, SGDT, Adam and FP-Adam at 3600 and 7200 iterations on
  # seed 0 (about 2 h); SGDT and FP-Adam at 14400 on seed 0 (about 2 h); the W3A3
  # selections carried to W4A4 and W2A2 (about 20 min each); SGD and SGDT on their own
  # grids at W2A2 and W4A4 (about 50 min each); the R18 demo at W4A4 and W3A3 (its own
  # FP start; about 85 min and 2.2 h). Every run is reused once finished.
  RS=("$PY" benchmarks/recipe_study.py --out "$OUT")
  # (the FP rows are unquantized: their W3A3-study runs are reused at every bit-width)
  CARRY=(--max-extensions 0 --grid SGD:81:1/9 --grid SGDT:27:3 --grid Adam:243:1/9
         --grid AdamT:27:1 --grid FP-SGD:243:1/9 --grid FP-Adam:729:1/27
         --methods SGD,SGDT,Adam,AdamT,FP-SGD,FP-Adam --stop-after seeds)
  echo "[run_all] recipe study: light model W3A3, every method (resumable)"
  "${RS[@]}" --grid SGD:81,243,729:1/27,1/9,1/3 --extend-edge-method-only \
    --methods SGD,SGDT,Adam,AdamT,freezing,dampening,LTS,OBR,FP-SGD,FP-Adam --lengths 2,4 \
    2> >(grep -v -i "warn" >&2)
  echo "[run_all] recipe study: W3A3 selections at 8x and 16x the grids' length, seed 0"
  "${RS[@]}" --grid SGD:81,243,729:1/27,1/9,1/3 --extend-edge-method-only \
    --methods SGD,SGDT,Adam,FP-Adam --length-rows SGD,SGDT,Adam,FP-Adam --seeds 0 \
    --lengths 8,16 --name recipe_study_long_seed0 \
    2> >(grep -v -i "warn" >&2)
  echo "[run_all] recipe study: SGDT and FP-Adam at 32x, seed 0 (their W3A3 selections)"
  "${RS[@]}" --max-extensions 0 --grid SGD:81:1/9 --grid SGDT:27:3 --grid FP-Adam:729:1/27 \
    --methods SGDT,FP-Adam --length-rows SGDT,FP-Adam --seeds 0 --lengths 32 \
    --name recipe_study_32x_seed0 2> >(grep -v -i "warn" >&2)
  for bits in 4 2; do
    echo "[run_all] recipe study: the W3A3 selections at W${bits}A${bits}"
    "${RS[@]}" --bits "$bits" "${CARRY[@]}" 2> >(grep -v -i "warn" >&2)
  done
  for bits in 2 4; do
    echo "[run_all] recipe study: SGD and SGDT on their own grids at W${bits}A${bits}"
    "${RS[@]}" --bits "$bits" --methods SGD,SGDT,FP-SGD,FP-Adam \
      --grid SGD:81,243,729:1/27,1/9,1/3 --stop-after seeds \
      --name "recipe_study_w${bits}a${bits}_grids" 2> >(grep -v -i "warn" >&2)
  done
  for bits in 4 3; do
    echo "[run_all] recipe study: the R18 demo at W${bits}A${bits}"
    "${RS[@]}" --model r18 --bits "$bits" --fp-iters 4000 2> >(grep -v -i "warn" >&2)
  done
fi
echo "[run_all] all results in $OUT/ ($(( SECONDS / 60 )) min in all)"
