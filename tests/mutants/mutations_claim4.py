"""Mutations of claim 4's own model family and the cross-check attack (tests/test_claim4.py)."""
from mutations import Mutation

TESTS = ("tests/test_claim4.py",)

MUTATIONS = [
    Mutation("claim4_config_unvalidated", "claim4.training_size is not checked against the "
             "training set",
             "dmr/config/__init__.py", "  _validate_claim4_size(c.claim4, train_size)\n", "",
             TESTS),
    Mutation("claim4_family_ignored_in_records", "a family's record is taken for the sweep's "
             "model of the same variant, N and seed", "dmr/results.py",
             "  return records.ModelKey.of(record) == records.ModelKey.of(key)\n",
             "  return records.ModelKey.of(record).order[1:] == records.ModelKey.of(key).order[1:]\n",
             TESTS),
    Mutation("claim4_no_family_models", "claim4.architecture set but no claim-4 models planned "
             "or trained", "dmr/specs.py",
             "    if self.claim4 is not None:\n", "    if False:\n", TESTS),
    Mutation("claim4_sweep_architecture", "claim-4 models built with the sweep's architecture",
             "dmr/specs.py", "      claim4 = ClassifierSpec(c.claim4.architecture,",
             "      claim4 = ClassifierSpec(c.classifier.architecture,", TESTS),
    Mutation("claim4_fingerprint_without_section", "the claim4 fields left out of the "
             "fingerprint even when set", "dmr/fingerprint.py",
             "  return flat.get(field.result) is not None", "  return False", TESTS),
    Mutation("cross_check_union_paper_only", "the combined success counts the paper's attack "
             "only", "dmr/robustness.py",
             "  return np.asarray(success, bool) | np.asarray(cross, bool)[:, None]\n",
             "  return np.asarray(success, bool)\n", TESTS),
    Mutation("cross_check_never_run", "attack.cross_check set but not run", "dmr/attacking.py",
             "  if a.cross_check:\n", "  if False:\n", TESTS),
    Mutation("cross_check_report_reads_paper_attack", "the report's off-manifold intervals "
             "ignore the union with the cross-check", "dmr/records.py",
             '"off_combined_success" if combined and "off_combined_success" in arrays else',
             '"off_success" if combined and "off_combined_success" in arrays else', TESTS),
    Mutation("claim4_family_pooled_with_sweep", "family records pooled into claims 1-3's models",
             "dmr/report/pooling.py", "if key.family else group.models",
             "if False else group.models",
             TESTS),
    Mutation("claim4_report_uses_sweep", "claim 4 judged on the sweep's models despite its own "
             "family", "dmr/report/claim4.py",
             "  for models, family in ((group.families.get(CLAIM4_FAMILY, []), True), "
             "(group.models, False)):",
             "  for models, family in (((), True), (group.models, False)):",
             ("tests/test_report.py",)),
    Mutation("claim4_reference_model_from_family", "claim 1's reference model may be a claim-4 "
             "model", "dmr/experiments.py", '             and "family" not in r]', "]", TESTS),
    Mutation("claim4_report_stage_examples_of_family", "the report stage looks for claim 1's "
             "model's examples when only a family was attacked", "dmr/experiments.py",
             '  if any(records.is_attacked(r) and "family" not in r\n',
             '  if any(records.is_attacked(r)\n', TESTS),
]
