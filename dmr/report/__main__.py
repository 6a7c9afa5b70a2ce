"""python -m dmr.report --workdirs A B --out DIR [--dataset D] (dmr/report/cli.py)."""
import sys

from dmr.report.cli import main

sys.exit(main(sys.argv[1:]))
