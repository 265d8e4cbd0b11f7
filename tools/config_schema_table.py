"""Print the table of every declared config key (each declared next to its component,
all listed in mmtrs/apis/schemas.py), as it appears in docs/errors.md;
tests/test_config_fuzz.py checks that the docs hold it."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmtrs.apis.schemas import SCHEMAS  # noqa: E402

if __name__ == '__main__':
    print('| key | accepted values | meaning |\n|---|---|---|')
    print('\n'.join(schema.table(name) for name, schema in SCHEMAS.items()))
