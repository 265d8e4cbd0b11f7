from setuptools import find_packages, setup


def read_requirements(path):
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]


def extensions():
    """The fused CPU quantizer kernel (mmtrs/quant/csrc). Optional: without torch at build
    time (an isolated build) mmtrs installs without it and uses the ATen-op path."""
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        return [], {}
    ext = CppExtension(
        'mmtrs.quant._fused_quantize', ['mmtrs/quant/csrc/fused_quantize.cpp'],
        # -fopenmp: ATen's parallel_for is header code that needs it to use threads;
        # -ffp-contract=off: no fused multiply-adds, whose single rounding would make
        # the kernels' float32 values differ from ATen's (GCC contracts by default
        # where the target has FMA, e.g. aarch64)
        extra_compile_args=['-O3', '-fopenmp', '-ffp-contract=off'],
        extra_link_args=['-fopenmp'])
    return [ext], {'build_ext': BuildExtension}


ext_modules, cmdclass = extensions()
setup(
    name='mmtrs',
    version='0.1.0',
    description='Low-bit QAT with transition-rate scheduling for MMDetection 3.x',
    packages=find_packages(include=['mmtrs', 'mmtrs.*']),
    # The configs, installed where MMDetection installs its own (<package>/.mim/configs):
    # mmtrs/.mim/configs is a link to configs/, so an editable install reads the
    # checkout's files and a regular one gets a copy (mmtrs/apis/configs.py finds them).
    package_data={'mmtrs': ['.mim/configs/**/*.py']},
    python_requires='>=3.9',
    install_requires=read_requirements('requirements.txt'),
    extras_require={'dev': read_requirements('requirements-dev.txt')},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
