"""results.json and per-image outcomes -> report/report.md, report/claims.json and png figures.

Every number in the report is computed from results.json, the per-image outcome files its records
name (dmr/outcomes.py) and the example images the attacks stage saved; nothing is hard-coded. Each
claim gets a verdict, held / not held / inconclusive / not measured (claim 4, an existence claim:
shown / not shown at these configurations), with the 95% interval that decided it
(docs/protocol.md#claims); rates of several seeds get seed-level intervals (dmr.stats). Records
that predate per-image outcomes fall back to their stored rates, without intervals, and their
claims stay inconclusive.

Several workdirs (sweeps on several machines) are merged: models are pooled by config
fingerprint, never across fingerprints, and the intervals are recomputed from the outcomes
(`python -m dmr.report --workdirs A B --out DIR`, dmr/report/cli.py).

Modules: pooling (workdirs -> fingerprint groups of models), measures (per-image outcomes ->
Measures with intervals), claims (the four judges and their THRESHOLDS), text (markdown),
figures (png), document (report.md and claims.json), cli.
"""
from dmr.report.claims import claims_summary, judge_claims
from dmr.report.cli import main
from dmr.report.document import write_report, written_claims
from dmr.report.measures import METRICS, PER_IMAGE, Measure, measure
from dmr.report.pooling import Group, Model, load_groups
from dmr.report.text import TITLES
from dmr.report.verdicts import (CLAIM4_FAMILY, NO_INTERVAL, SETTLE_CHANCE, SETTLE_OUTCOMES,
                                 SETTLE_SEEDS, THRESHOLDS, Claim, Thresholds)

__all__ = ["CLAIM4_FAMILY", "Claim", "Group", "METRICS", "Measure", "Model", "NO_INTERVAL",
           "PER_IMAGE", "SETTLE_CHANCE", "SETTLE_OUTCOMES", "SETTLE_SEEDS", "THRESHOLDS", "TITLES",
           "Thresholds", "claims_summary", "judge_claims", "load_groups", "main", "measure",
           "write_report", "written_claims"]
