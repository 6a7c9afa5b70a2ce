"""Mutations of the claim verdicts (dmr/report/), their intervals (dmr/stats.py) and the typed
records they read (dmr/records.py)."""
from mutations import Mutation

CLAIMS, POOLING, STATS = "dmr/report/claims.py", "dmr/report/pooling.py", "dmr/stats.py"
CLAIM4, VERDICTS = "dmr/report/claim4.py", "dmr/report/verdicts.py"
MEASURES = "dmr/report/measures.py"
RECORDS = "dmr/records.py"
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
             CLAIMS, 'verdict = _judge(regular, limit, True, "the off-manifold share"',
             'verdict = _judge(regular, limit, False, "the off-manifold share"', TESTS),
    Mutation("report_claim1_no_reference", "claim 1 ignores the on-manifold reference", CLAIMS,
             "  if on is not None and verdict.status != NOT_HELD:",
             "  if False:", TESTS),
    Mutation("report_claim1_reference_side", "claim 1's share compared with the wrong end of "
             "the on-manifold reference's interval", CLAIMS,
             "above, below = regular.interval.lo > on.interval.hi, regular.interval.hi < on.interval.lo",
             "above, below = regular.interval.hi > on.interval.lo, regular.interval.lo < on.interval.hi",
             TESTS),
    Mutation("report_claim1_coarse_ignored", "claim 1 of a record without the tangent reference "
             "judged on a manifold fit flagged too coarse", CLAIMS, "    if coarse:\n",
             "    if False:\n", TESTS),
    Mutation("report_claim1_range_unchecked", "a claim-1 share outside 0-100% of a record "
             "without the tangent reference is judged", CLAIMS,
             "    if not 0.0 <= regular.value <= 1.0:\n      return", "    if False:\n      return",
             TESTS),
    Mutation("report_claim1_tangent_ignored", "claim 1 judged although a direction along the "
             "manifold leaves it by 50% or more", CLAIMS,
             "  elif tangent.interval.hi >= limit:", "  elif False:", TESTS),
    Mutation("report_claim1_tangent_estimate", "the tangent reference's estimate, not its "
             "interval, decides whether it reaches the threshold", CLAIMS,
             "  elif tangent.interval.hi >= limit:",
             "  elif tangent.value >= limit:", TESTS),
    Mutation("report_claim1_old_rule_kept", "records with the tangent reference still judged by "
             "fit_too_coarse and the 0-100% range", CLAIMS, "  if tangent is None:\n    coarse",
             "  if True:\n    coarse", TESTS),
    Mutation("report_claim1_true_margin_ignored", "claim 1's true share held when merely above "
             "the on-manifold perturbations'", CLAIMS,
             "  above = regular.interval.lo - on.interval.hi > margin",
             "  above = regular.interval.lo - on.interval.hi > 0", TESTS),
    Mutation("report_claim1_random_ignored", "claim 1's true share held although below a random "
             "direction's", CLAIMS,
             "  if random is not None and regular.interval.hi < random.interval.lo:",
             "  if False:", TESTS),
    Mutation("report_seed_level_dropped", "rates of several seeds get the image-level bootstrap",
             MEASURES, "  if table is not None and len(table.outcomes) >= 2:", "  if False:",
             TESTS),
    Mutation("report_fonts_not_clustered", "FONTS rows taken as independent images despite the "
             "records' font count", MEASURES,
             "  clusters = (rows // 10) % fonts if fonts else None", "  clusters = None", TESTS),
    Mutation("report_claim2_side", "claim 2 held when success lies below 5%", CLAIMS,
             'verdict = _judge(success, THRESHOLDS.claim2_min_success, True,',
             'verdict = _judge(success, THRESHOLDS.claim2_min_success, False,', TESTS),
    Mutation("report_claim2_smallest_n", "claim 2 judged on the smallest N's models", CLAIMS,
             "  n, normal = max(attacked.items())", "  n, normal = min(attacked.items())", TESTS),
    Mutation("report_claim3_error_sign", "claim 3 held when on-manifold training raises test "
             "error", CLAIMS, "    return Verdict(NOT_HELD if loss else HELD,",
             "    return Verdict(HELD if loss else NOT_HELD,",
             TESTS),
    Mutation("report_claim3_success_trend_swapped", "claim 3 compares on-manifold success from "
             "the largest N to the smallest", CLAIMS,
             'drop = difference(normal[small], normal[large], "on_manifold_success"',
             'drop = difference(normal[large], normal[small], "on_manifold_success"', TESTS),
    Mutation("report_claim3_error_part_dropped", "claim 3 ignores its test error part", CLAIMS,
             "    parts.append(_across_sizes(gaps, no_change))",
             "    parts.append(_across_sizes(gaps, no_change)); parts = parts[:0]",
             TESTS),
    Mutation("report_claim3_one_seed_enough", "claim 3 settled with one model per setting",
             CLAIMS, "    if seeds < THRESHOLDS.min_seeds:", "    if seeds < 1:", TESTS),
    Mutation("report_claim3_holm_dropped", "claim 3's sizes judged each at 5% without Holm's "
             "correction", CLAIMS, "  return dict(zip(gaps, stats.holm_adjusted(p)))",
             "  return dict(zip(gaps, p))", TESTS),
    Mutation("report_claim4_gap_side", "claim 4 shown when the robust model's error is far above",
             CLAIM4, "    if self.gap.interval.hi >= t.claim4_max_error_gap:",
             "    if self.gap.interval.lo >= t.claim4_max_error_gap:", TESTS),
    Mutation("report_claim4_success_ignored", "claim 4 shown whatever the attack's success",
             CLAIM4, "    if self.success.interval.hi >= t.claim4_max_off_success:",
             "    if False:", TESTS),
    Mutation("report_claim4_seed_guard_dropped", "claim 4 shown by a configuration of fewer than "
             "3 seeds", CLAIM4, "    if self.seeds < t.min_seeds:", "    if False:", TESTS),
    Mutation("report_claim4_cross_check_optional", "claim 4 shown without the cross-check "
             "attack", CLAIM4, "    if not self.cross_checked:", "    if False:", TESTS),
    Mutation("report_not_held_lost", "a part not held no longer makes its claim not held",
             VERDICTS, "  for status in (NOT_HELD, INCONCLUSIVE):", "  for status in (INCONCLUSIVE,):",
             TESTS),
    Mutation("report_near_chance_removed", "models near chance still get verdicts", VERDICTS,
             "    if m is not None and (m.interval.hi if m.interval else m.value) >= (",
             "    if False and (", TESTS),
    Mutation("report_no_interval_decides", "a stored rate without interval decides a verdict",
             VERDICTS, "    return Verdict(INCONCLUSIVE, reason=NO_INTERVAL, settle=SETTLE_OUTCOMES)",
             "    return Verdict(HELD if m.value > threshold else NOT_HELD)", TESTS),
    Mutation("report_fingerprints_pooled", "records of different configs pooled in one group",
             POOLING, 'group = groups.setdefault(r.get("fingerprint"), Group(r.get("fingerprint")))',
             "group = groups.setdefault(None, Group(None))", TESTS),
    Mutation("report_duplicates_counted", "a model found in two workdirs is counted twice",
             POOLING, "        group.duplicates += 1\n        continue\n",
             "        group.duplicates += 1\n", TESTS),
    Mutation("report_misclassified_attacked_counted", "off-manifold success counts attacks on "
             "misclassified inputs", RECORDS,
             'return arrays[name][:, arrays["off_correct"].astype(bool)]',
             'return arrays[name][:, :]', TESTS),
    Mutation("records_on_manifold_copy_read", "on-manifold rates read from the first kind's "
             "copy on_manifold_* even when the kind-specific fields exist", RECORDS,
             "    if not on and legacy is not None:", "    if legacy is not None:",
             ("tests/test_records.py",)),
    Mutation("records_attacked_by_rates", "a record with rates but no re-verified counts counts "
             "as attacked, so the attacks stage never redoes it", RECORDS,
             '  return f"{OFF}_verified" in record', '  return f"{OFF}_success" in record',
             ("tests/test_records.py",)),
]
