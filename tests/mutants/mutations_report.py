"""Mutations of the claim verdicts (dmr/report.py) and their intervals (dmr/stats.py)."""
from mutations import Mutation

REPORT, STATS = "dmr/report.py", "dmr/stats.py"
TESTS = ("tests/test_report.py",)

MUTATIONS = [
    Mutation("stats_paired_draws_independent", "claim-3 differences resample the two arms' "
             "images independently", STATS,
             "    sums_b.append(np.stack([x[images].sum(1) for x in b], 1))",
             "    sums_b.append(np.stack([x[rng.integers(0, size, images.shape)].sum(1) for x in b], 1))",
             ("tests/test_stats.py",)),
    Mutation("stats_seeds_not_resampled", "a rate's bootstrap ignores the spread between seeds",
             STATS, "  return _seed_means(sums, sizes, rng.integers(0, k, size=(resamples, k)))",
             "  return _seed_means(sums, sizes, np.tile(np.arange(k), (resamples, 1)))",
             ("tests/test_stats.py",)),
    Mutation("report_claim1_threshold_side", "claim 1 held when the share lies below 50%",
             REPORT, 'verdict = _judge(share, CLAIM1_MIN_LEAVING, True, "the off-manifold share"',
             'verdict = _judge(share, CLAIM1_MIN_LEAVING, False, "the off-manifold share"', TESTS),
    Mutation("report_claim1_no_reference", "claim 1 ignores the on-manifold reference", REPORT,
             "  if on is not None and verdict.status != NOT_HELD:",
             "  if False:", TESTS),
    Mutation("report_claim1_reference_side", "claim 1's share compared with the wrong end of "
             "the on-manifold reference's interval", REPORT,
             "above, below = share.interval.lo > on.interval.hi, share.interval.hi < on.interval.lo",
             "above, below = share.interval.hi > on.interval.lo, share.interval.lo < on.interval.hi",
             TESTS),
    Mutation("report_claim1_coarse_ignored", "claim 1 of a record without the tangent reference "
             "judged on a manifold fit flagged too coarse", REPORT, "    if coarse:\n",
             "    if False:\n", TESTS),
    Mutation("report_claim1_range_unchecked", "a claim-1 share outside 0-100% of a record "
             "without the tangent reference is judged", REPORT,
             "    if not 0.0 <= share.value <= 1.0:\n      return", "    if False:\n      return",
             TESTS),
    Mutation("report_claim1_tangent_ignored", "claim 1 judged although a direction along the "
             "manifold leaves it by 50% or more", REPORT,
             "  elif tangent.interval.hi >= CLAIM1_MIN_LEAVING:", "  elif False:", TESTS),
    Mutation("report_claim1_tangent_estimate", "the tangent reference's estimate, not its "
             "interval, decides whether it reaches the threshold", REPORT,
             "  elif tangent.interval.hi >= CLAIM1_MIN_LEAVING:",
             "  elif tangent.value >= CLAIM1_MIN_LEAVING:", TESTS),
    Mutation("report_claim1_old_rule_kept", "records with the tangent reference still judged by "
             "fit_too_coarse and the 0-100% range", REPORT, "  if tangent is None:\n    coarse",
             "  if True:\n    coarse", TESTS),
    Mutation("report_claim2_side", "claim 2 held when success lies below 5%", REPORT,
             'verdict = _judge(success, CLAIM2_MIN_SUCCESS, True,',
             'verdict = _judge(success, CLAIM2_MIN_SUCCESS, False,', TESTS),
    Mutation("report_claim2_smallest_n", "claim 2 judged on the smallest N's models", REPORT,
             "  n, normal = max(attacked.items())", "  n, normal = min(attacked.items())", TESTS),
    Mutation("report_claim3_error_sign", "claim 3 held when on-manifold training raises test "
             "error", REPORT, "per_n = [_judge(g, 0.0, False,", "per_n = [_judge(g, 0.0, True,",
             TESTS),
    Mutation("report_claim3_success_trend_swapped", "claim 3 compares on-manifold success from "
             "the largest N to the smallest", REPORT,
             'drop = difference(normal[small], normal[large], "on_manifold_success"',
             'drop = difference(normal[large], normal[small], "on_manifold_success"', TESTS),
    Mutation("report_claim3_error_part_dropped", "claim 3 ignores its test error part", REPORT,
             "    parts.append(_any_n(per_n))", "    parts.append(_any_n(per_n)); parts = parts[:0]",
             TESTS),
    Mutation("report_claim3_one_seed_enough", "claim 3 settled with one model per setting",
             REPORT, "    if seeds < MIN_SEEDS:", "    if seeds < 1:", TESTS),
    Mutation("report_claim4_gap_side", "claim 4 held when the robust model's error is far above",
             REPORT, '_judge(gap, CLAIM4_MAX_ERROR_GAP, False,', '_judge(gap, CLAIM4_MAX_ERROR_GAP, True,',
             TESTS),
    Mutation("report_claim4_success_ignored", "claim 4 held whatever the attack's success",
             REPORT, "_judge(success, CLAIM4_MAX_OFF_SUCCESS, False,", "_judge(success, 2.0, False,",
             TESTS),
    Mutation("report_not_held_lost", "a part not held no longer makes its claim not held",
             REPORT, "  for status in (NOT_HELD, INCONCLUSIVE):", "  for status in (INCONCLUSIVE,):",
             TESTS),
    Mutation("report_near_chance_removed", "models near chance still get verdicts", REPORT,
             "    if m is not None and (m.interval.hi if m.interval else m.value) >= chance - "
             "NEAR_CHANCE_POINTS:",
             "    if False:", TESTS),
    Mutation("report_no_interval_decides", "a stored rate without interval decides a verdict",
             REPORT, "    return Verdict(INCONCLUSIVE, reason=NO_INTERVAL, settle=SETTLE_OUTCOMES)",
             "    return Verdict(HELD if m.value > threshold else NOT_HELD)", TESTS),
    Mutation("report_fingerprints_pooled", "records of different configs pooled in one group",
             REPORT, 'group = groups.setdefault(r.get("fingerprint"), Group(r.get("fingerprint")))',
             "group = groups.setdefault(None, Group(None))", TESTS),
    Mutation("report_duplicates_counted", "a model found in two workdirs is counted twice",
             REPORT, "        group.duplicates += 1\n        continue\n",
             "        group.duplicates += 1\n", TESTS),
    Mutation("report_misclassified_attacked_counted", "off-manifold success counts attacks on "
             "misclassified inputs", REPORT,
             'reduce(o[name][:, o["off_correct"].astype(bool)]',
             'reduce(o[name][:, :]', TESTS),
]
