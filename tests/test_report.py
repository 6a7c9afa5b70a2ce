"""Claim verdicts on synthetic workdirs whose truth is known: every branch of every claim (held,
not held, inconclusive for each reason, not measured), the report's summary and ranges, and
merged workdirs giving the verdicts of one run with all models."""
import dataclasses
import json
import os

import numpy as np
import pytest

from dmr import outcomes, report, results, stats
from dmr.report import claims as report_claims

TEST, ATTACKED, RESTARTS = 1000, 300, 2


def flags(rate: float, size: int, rng) -> np.ndarray:
  """A bool array of `size` with exactly round(rate * size) True entries at random places."""
  out = np.zeros(size, bool)
  out[rng.permutation(size)[:round(rate * size)]] = True
  return out


def add_model(workdir, variant, n, seed, wrong, *, off=None, on=None, kind="learned",
              fingerprint="f1", rng=None, stored_only=False):
  """A model whose test images `wrong` (bool [TEST], or a rate) are misclassified, whose regular
  attack succeeds on a share `off` and on-manifold attack on a share `on` of (input, restart)
  pairs of the correctly classified attacked images."""
  rng = rng or np.random.default_rng(hash((variant, n, seed)) % 2**32)
  wrong = flags(wrong, TEST, rng) if np.isscalar(wrong) else wrong
  arrays = {"test_correct": ~wrong}
  fields = {"test_error": float(wrong.mean()), "fingerprint": fingerprint}
  if off is not None:
    success = flags(off, RESTARTS * ATTACKED, rng).reshape(RESTARTS, ATTACKED)
    arrays.update(off_correct=np.ones(ATTACKED, bool), off_success=success)
    fields.update(off_manifold_success=off, off_manifold_correct=ATTACKED)
  if on is not None:
    success = flags(on, RESTARTS * ATTACKED, rng).reshape(RESTARTS, ATTACKED)
    arrays.update({f"on_{kind}_evaluated": np.ones(ATTACKED, bool),
                   f"on_{kind}_correct": np.ones(ATTACKED, bool), f"on_{kind}_success": success})
    fields.update(on_manifold_success=on, on_manifold_correct=ATTACKED)
  if not stored_only:
    directory = os.path.join("models", variant, f"n{n}", f"seed{seed}")
    outcomes.save(os.path.join(workdir, directory), **arrays)
    fields["outcomes"] = os.path.join(directory, outcomes.FILENAME)
  results.update_record(workdir, variant, n, seed, **fields)


def add_distances(workdir, share, on_share, *, tangent=0.05, kind="learned", images=400,
                  noise=0.05, seed=0, model=("normal", 2000, 0), **manifold_fields):
  """Claim-1 measurements: per-image perturbations of squared norm ~1 of which a share `share`
  (on-manifold perturbations: `on_share`; tangent directions: `tangent`, None for records that
  predate them; random directions: 0.97) leaves the manifold."""
  rng = np.random.default_rng(seed)
  arrays = {}
  references = (("tangent_", tangent), ("random_", 0.97), ("on_", on_share))
  for prefix, s in (("", share),) + tuple(r for r in references if r[1] is not None):
    total = rng.uniform(0.5, 1.5, images)
    arrays[f"{kind}_{prefix}perturbation_sq"] = total
    arrays[f"{kind}_{prefix}leaving_sq"] = total * (s + noise * rng.standard_normal(images))
  outcomes.save(os.path.join(workdir, "distances"), **arrays)
  results.update_manifold(workdir, model=results.model_key(*model), **{kind: {
      "test_distance": 0.1, "off_adversarial_distance": 0.3, "on_adversarial_distance": 0.12,
      "perturbation_norm": 1.0, "off_manifold_fraction": share,
      **({} if tangent is None else {"tangent_off_manifold_fraction": tangent}),
      **manifold_fields}})


def claims(workdir, dataset="fashion_mnist"):
  return {c["claim"]: c for c in report.claims_summary(str(workdir), dataset)}


# ---- Claim 1 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("share, on_share, noise, images, status, reason", [
    (0.85, 0.2, 0.05, 400, stats.HELD, ""),
    (0.3, 0.1, 0.05, 400, stats.NOT_HELD, ""),                # below the 50% threshold
    (0.7, 0.95, 0.05, 400, stats.NOT_HELD, ""),               # below the on-manifold reference
    (0.52, 0.1, 0.5, 30, stats.INCONCLUSIVE, "contains 0.5"),  # straddles the threshold
    (0.75, 0.74, 0.3, 60, stats.INCONCLUSIVE, "intervals overlap"),
])
def test_claim1_verdict_follows_the_share_and_its_references(tmp_path, share, on_share, noise,
                                                             images, status, reason):
  add_model(tmp_path, "normal", 2000, 0, 0.15)
  add_distances(tmp_path, share, on_share, noise=noise, images=images)
  c = claims(tmp_path)[1]
  assert c["verdict"] == status, c
  assert reason in c["reason"]
  d = outcomes.load(os.path.join(tmp_path, "distances"))
  ratio = d["learned_leaving_sq"].sum() / d["learned_perturbation_sq"].sum()
  assert c["interval"]["estimate"] == pytest.approx(ratio)


def test_claim1_held_beyond_100_percent_when_the_tangent_reference_is_low(tmp_path):
  """The Fashion-MNIST case: test images far from a coarse VAE-GAN, a share above 100% (projection
  error), but a direction along the manifold leaves it by 5% only: the measure separates."""
  add_model(tmp_path, "normal", 2000, 0, 0.15)
  add_distances(tmp_path, 1.06, 0.16, tangent=0.05, test_distance=3.747, perturbation_norm=1.26)
  c = claims(tmp_path)[1]
  assert (c["verdict"], c["reason"]) == (stats.HELD, ""), c
  assert c["interval"]["lo"] > 1.0
  assert "(tangent directions: residual ratio 0.05" in c["evidence"]
  assert ("the test images' mean distance to the manifold, 3.747, is above the perturbations' "
          "mean norm 1.260 (a caveat, not judged" in c["evidence"])
  # Never printed as a share above 100%: the projection-based figure is a residual ratio.
  assert c["interval_text"].startswith("residual ratio 1.06") and (
      ", tangent directions residual ratio 0.05") in c["interval_text"]
  assert "106." not in c["evidence"] + c["interval_text"]
  text = open(report.write_report(str(tmp_path), "fashion_mnist")).read()
  assert "| learned: tangent_off_manifold_fraction | 0.05 |" in text


@pytest.mark.parametrize("tangent", [0.62, 0.45])  # the interval above, and reaching, 50%
def test_claim1_inconclusive_when_the_tangent_reference_reaches_the_threshold(tmp_path, tangent):
  add_model(tmp_path, "normal", 2000, 0, 0.15)
  add_distances(tmp_path, 0.95, 0.2, tangent=tangent, noise=0.5, images=100)
  c = claims(tmp_path)[1]
  d = outcomes.load(os.path.join(tmp_path, "distances"))
  t = stats.ratio_interval(d["learned_tangent_leaving_sq"], d["learned_tangent_perturbation_sq"])
  assert t.hi >= 0.5 and (t.lo > 0.5) == (tangent > 0.5)
  assert c["verdict"] == stats.INCONCLUSIVE
  assert c["reason"] == (
      "manifold fit too coarse: a direction along the manifold has the residual ratio "
      f"{t.estimate:.3f} [{t.lo:.3f}, {t.hi:.3f}], reaching 0.50, so the "
      "measure cannot tell a perturbation along the manifold from one leaving it")
  assert "--config.vaegan.epochs" in c["settle"]


def test_claim1_not_held_below_the_threshold_with_a_low_tangent_reference(tmp_path):
  add_model(tmp_path, "normal", 2000, 0, 0.15)
  add_distances(tmp_path, 0.3, 0.1, tangent=0.05, fit_too_coarse=True)  # the flag: not judged
  assert claims(tmp_path)[1]["verdict"] == stats.NOT_HELD


def test_claim1_old_records_inconclusive_when_the_fit_is_too_coarse(tmp_path):
  """Records without the tangent reference keep the former rule."""
  add_model(tmp_path, "normal", 2000, 0, 0.15)
  add_distances(tmp_path, 0.85, 0.2, tangent=None,
                fit_too_coarse="d(x) 0.41 against ||delta|| 0.3")
  c = claims(tmp_path)[1]
  assert (c["verdict"], c["reason"]) == (
      stats.INCONCLUSIVE, "manifold fit too coarse (d(x) 0.41 against ||delta|| 0.3)")
  assert "--config.vaegan.epochs" in c["settle"]
  assert "tangent" not in c["evidence"] + c["interval_text"]


def test_claim1_share_outside_its_range_is_explained_not_judged_in_old_records(tmp_path):
  add_model(tmp_path, "normal", 2000, 0, 0.15)
  add_distances(tmp_path, -4.59, 0.2, kind="true", tangent=None)
  c = claims(tmp_path, "fonts")[1]
  assert c["verdict"] == stats.INCONCLUSIVE
  assert c["reason"] == "manifold fit too coarse: the residual ratio lies outside 0-1"
  assert "--config.distances.projection_steps" in c["settle"]
  assert c["evidence"].startswith("residual ratio -4.590 [") and "not a share" in c["evidence"]
  assert "-459.0%" not in c["evidence"]
  text = open(report.write_report(str(tmp_path), "fonts")).read()
  assert ("| true: off_manifold_fraction | -4.59 (a residual ratio outside [0, 1]: projection "
          "error") in text


def tangent_parts(rng, images, share, dims=784, k=6):
  """Per image: (normal_sq, perturbation_sq) of perturbations against a known tangent space
  (the span of a random orthonormal [dims, k] basis): each perturbation has a part along the
  space and one orthogonal to it, scaled so that a share `share` of its squared norm is
  orthogonal on average (per image within about a fifth of the distance to 0 or 1);
  normal_sq is measured by projecting on the basis."""
  basis, _ = np.linalg.qr(rng.standard_normal((dims, k)))
  along = rng.standard_normal((images, k)) @ basis.T
  off = rng.standard_normal((images, dims))
  off -= off @ basis @ basis.T
  along /= np.linalg.norm(along, axis=1, keepdims=True)
  off /= np.linalg.norm(off, axis=1, keepdims=True)
  weight = np.clip(share + 0.2 * min(share, 1 - share) * rng.standard_normal(images), 0, 1)
  delta = np.sqrt(1 - weight)[:, None] * along + np.sqrt(weight)[:, None] * off
  delta *= rng.uniform(0.5, 1.5, (images, 1))
  normal = delta - delta @ basis @ basis.T
  return np.sum(normal**2, axis=1), np.sum(delta**2, axis=1)


def add_tangent_shares(workdir, share, on_share, *, random_share=None, kind="learned", images=300,
                       seeds=1, seed=0):
  """The true shares of claim 1 (distances/outcomes.npz: <kind>_[random_|on_]tangent_normal_sq
  and _perturbation_sq) of `seeds` models of the reference setting, images concatenated; a
  random direction's parts are those of a Gaussian direction (share 1 - 6/784 expected)."""
  rng = np.random.default_rng(seed)
  arrays = {}
  for ref, s in (("", share), ("on_", on_share)):
    normal, total = tangent_parts(rng, images * seeds, s)
    arrays[f"{kind}_{ref}tangent_normal_sq"], arrays[f"{kind}_{ref}tangent_perturbation_sq"] = (
        normal.astype(np.float32), total.astype(np.float32))
  normal, total = (tangent_parts(rng, images * seeds, random_share) if random_share is not None
                   else _random_parts(rng, images * seeds))
  arrays[f"{kind}_random_tangent_normal_sq"] = normal.astype(np.float32)
  arrays[f"{kind}_random_tangent_perturbation_sq"] = total.astype(np.float32)
  outcomes.save(os.path.join(workdir, "distances"), **arrays)
  results.update_manifold(workdir, models=[results.model_key("normal", 2000, s)
                                           for s in range(seeds)])
  return arrays


def _random_parts(rng, images, dims=784, k=6):
  basis, _ = np.linalg.qr(rng.standard_normal((dims, k)))
  delta = rng.standard_normal((images, dims))
  normal = delta - delta @ basis @ basis.T
  return np.sum(normal**2, axis=1), np.sum(delta**2, axis=1)


@pytest.mark.parametrize("share, on_share, random_share, images, status, reason", [
    (0.992, 0.1, None, 300, stats.HELD, ""),            # as orthogonal as a random direction
    (0.992, 0.9, None, 300, stats.NOT_HELD, ""),        # not 25 points above on-manifold's
    (0.7, 0.1, None, 300, stats.NOT_HELD, ""),          # below a random direction's
    (0.9, 0.6, 0.9, 2, stats.INCONCLUSIVE, "not 25.0 points clear"),
])
def test_claim1_true_share_against_the_random_direction_and_on_manifold_perturbations(
    tmp_path, share, on_share, random_share, images, status, reason):
  add_model(tmp_path, "normal", 2000, 0, 0.15)
  add_distances(tmp_path, 1.06, 0.16, tangent=0.05)  # the projection-based ratios: secondary
  arrays = add_tangent_shares(tmp_path, share, on_share, random_share=random_share,
                              images=images, seeds=3)
  c = claims(tmp_path)[1]
  assert (c["verdict"], reason in c["reason"]) == (status, True), c
  ratio = (arrays["learned_tangent_normal_sq"].sum()
           / arrays["learned_tangent_perturbation_sq"].sum())
  assert c["interval"]["estimate"] == pytest.approx(ratio, rel=1e-6)
  assert 0 <= c["interval"]["lo"] <= c["interval"]["hi"] <= 1
  assert f"{100 * ratio:.1f}% [" in c["evidence"]
  assert "is orthogonal to the learned manifold's tangent space, over the 3 models of normal " \
         "N=2000" in c["evidence"]
  assert "the projection-based residual ratio, not judged: residual ratio 1.06" in c["evidence"]
  if random_share is None:  # a Gaussian direction: 1 - k / D
    random = (arrays["learned_random_tangent_normal_sq"].sum()
              / arrays["learned_random_tangent_perturbation_sq"].sum())
    assert random == pytest.approx(1 - 6 / 784, abs=0.002)
    assert f"random directions: {100 * random:.1f}% [" in c["evidence"]


def test_fonts_smoke_run_with_tangent_arrays_prints_only_true_shares(tmp_path):
  """The real FONTS smoke run with the true shares added (known geometry): claim 1 reads them,
  every share printed lies in [0, 100%], the projection-based figures are residual ratios."""
  import re
  import shutil
  workdir = tmp_path / "run"
  shutil.copytree(os.path.join(DATA, "smoke-fonts"), workdir)
  add_tangent_shares(workdir, 0.99, 0.1, kind="true", images=4)
  text = open(report.write_report(str(workdir), "fonts", out=str(tmp_path / "out"))).read()
  c = {c["claim"]: c for c in json.load(open(tmp_path / "out" / "claims.json"))["groups"][0][
      "claims"]}[1]
  assert c["reason"] == "models near chance (test error 90%): normal N=200 (89.5% [84.5, 93.0])"
  assert c["interval_text"].startswith("share ") and "random directions " in c["interval_text"]
  assert "the projection-based residual ratio, not judged: residual ratio 1.419 [" in (
      c["evidence"])
  shares = [float(x) for x in re.findall(r"(-?[\d.]+)% \[", text + c["evidence"])]
  assert shares and all(0 <= x <= 100 for x in shares)


def test_claim1_near_chance_reference_model(tmp_path):
  add_model(tmp_path, "normal", 2000, 0, 0.88)
  add_distances(tmp_path, 0.85, 0.2)
  c = claims(tmp_path)[1]
  assert c["verdict"] == stats.INCONCLUSIVE
  assert c["reason"].startswith("models near chance (test error 90%): normal N=2000 (88.0% [")
  assert c["settle"] == report.SETTLE_CHANCE


def test_claim1_not_measured_and_without_outcomes(tmp_path):
  add_model(tmp_path, "normal", 2000, 0, 0.15)
  assert claims(tmp_path)[1]["verdict"] == stats.NOT_MEASURED
  results.update_manifold(tmp_path, model=results.model_key("normal", 2000, 0),
                          learned={"off_manifold_fraction": 0.9, "test_distance": 0.1,
                                   "off_adversarial_distance": 0.3,
                                   "on_adversarial_distance": 0.1})
  c = claims(tmp_path)[1]  # an older workdir: the stored share, but no interval
  assert (c["verdict"], c["reason"], c["interval"]) == (stats.INCONCLUSIVE, report.NO_INTERVAL,
                                                        None)
  assert c["evidence"].startswith("residual ratio 0.900 (no interval) of the regular "
                                  "perturbations leaving the learned manifold (projection-based")
  assert "; mean distance to it 0.100" in c["evidence"]


# ---- Claim 2 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("on, status", [
    (0.3, stats.HELD), (0.01, stats.NOT_HELD), (0.055, stats.INCONCLUSIVE)])
def test_claim2_verdict_follows_the_success_interval(tmp_path, on, status):
  for n in (500, 2000):
    add_model(tmp_path, "normal", n, 0, 0.2, on=on)
  c = claims(tmp_path)[2]
  assert c["verdict"] == status, c
  assert c["interval"]["estimate"] == pytest.approx(on)
  if status == stats.INCONCLUSIVE:
    assert c["reason"].startswith("the 95% interval of the on-manifold success [")
    assert c["settle"].startswith("more attacked images: a larger "
                                  "--config.on_manifold_attack.num_test (about ")


def test_claim2_near_chance_not_measured_and_stored_only(tmp_path):
  add_model(tmp_path, "normal", 500, 0, 0.2)
  assert claims(tmp_path)[2]["verdict"] == stats.NOT_MEASURED
  add_model(tmp_path, "normal", 200, 0, 0.87, on=0.6)
  add_model(tmp_path, "normal", 500, 0, 0.2, on=0.3)
  c = claims(tmp_path)[2]
  assert c["verdict"] == stats.HELD  # N=500 decides: the largest N, whose models learned
  add_model(tmp_path, "normal", 1000, 0, 0.87, on=0.6)
  c = claims(tmp_path)[2]
  assert c["verdict"] == stats.INCONCLUSIVE and "normal N=1000 (87.0% [" in c["reason"]
  stored = tmp_path / "stored"
  add_model(stored, "normal", 500, 0, 0.2, on=0.3, stored_only=True)
  c = claims(stored)[2]
  assert (c["verdict"], c["reason"]) == (stats.INCONCLUSIVE, report.NO_INTERVAL)
  assert c["interval_text"] == "success 30.0% (no interval) (threshold 5.0%)"


# ---- Claim 3 ------------------------------------------------------------------------------------


def add_claim3_models(workdir, seeds, error_change, on_small, on_large, fingerprint="f1"):
  """normal and on_adv_learned models at N = 500 and 2000 on the same test images: on_adv
  changes the normal model's test error by `error_change` (fixing or adding errors), and the
  normal models' on-manifold success is on_small at N=500 and on_large at N=2000."""
  for n, base, on in ((500, 0.3, on_small), (2000, 0.15, on_large)):
    for seed in seeds:
      rng = np.random.default_rng(1000 * n + seed)
      wrong = flags(base, TEST, rng)
      change = flags(abs(error_change) / (base if error_change < 0 else 1 - base), TEST, rng)
      adv = wrong & ~change if error_change < 0 else wrong | (change & ~wrong)
      add_model(workdir, "normal", n, seed, wrong, on=on, rng=rng, fingerprint=fingerprint)
      add_model(workdir, "on_adv_learned", n, seed, adv, on=on, rng=rng, fingerprint=fingerprint)


@pytest.mark.parametrize("change, on_small, on_large, status", [
    (-0.06, 0.4, 0.1, stats.HELD),
    (+0.06, 0.4, 0.1, stats.NOT_HELD),      # on-manifold training hurts
    (-0.06, 0.1, 0.4, stats.NOT_HELD),      # more data raises on-manifold success
    (0.0, 0.4, 0.1, stats.INCONCLUSIVE),    # (b) held, but no change in test error at any N
])
def test_claim3_verdict_with_three_seeds(tmp_path, change, on_small, on_large, status):
  add_claim3_models(tmp_path, (0, 1, 2), change, on_small, on_large)
  c = claims(tmp_path)[3]
  assert c["verdict"] == status, c


def test_claim3_without_any_effect_is_inconclusive(tmp_path):
  add_claim3_models(tmp_path, (0, 1, 2), 0.0, 0.2, 0.2)
  c = claims(tmp_path)[3]
  assert c["verdict"] == stats.INCONCLUSIVE
  assert c["reason"].startswith("no N's test error change differs from 0 after Holm's "
                                "correction across the 2 sizes (smallest adjusted p 1, at N=")
  assert c["settle"].startswith("more models per setting: --config.models_per_size=")
  assert int(c["settle"].split("=")[1].split()[0]) > 3  # more than the three it has


def error_model(variant, n, seed, rate, rng, extra=None):
  """An in-memory model misclassifying a random share `rate` of TEST images."""
  wrong = flags(rate, TEST, rng)
  return report.Model({"variant": variant, "n": n, "seed": seed, "test_error": rate,
                       **(extra or {})}, {"test_correct": ~wrong})


def holm_group(gain):
  """3 seeds of normal and on_adv_learned at N=500 (on_adv lowers test error by `gain`) and at
  N=2000 (no change); the seeds' test errors 1 point apart."""
  group = report.Group("f")
  for n, base, change in ((500, 0.3, gain), (2000, 0.15, 0.0)):
    for s in range(3):
      rng = np.random.default_rng(100 * n + s)
      group.models.append(error_model("normal", n, s, base + 0.01 * (s - 1), rng))
      group.models.append(error_model("on_adv_learned", n, s,
                                      base - change + 0.01 * ((s + 1) % 3 - 1), rng))
  return group


@pytest.mark.parametrize("gain, status", [(0.025, stats.INCONCLUSIVE), (0.03, stats.HELD)])
def test_claim3_is_judged_with_holm_across_the_sizes(gain, status):
  """Two sizes: N=500's change alone would be significant at 5% (p = 0.032), but not after
  Holm's correction (adjusted p = 2 x 0.032); at a gain of 3 points it is (p = 0.010)."""
  group = holm_group(gain)
  normal = report.pooling.by_setting(group.models, "normal")
  on = report.pooling.by_setting(group.models, "on_adv_learned")
  gaps = {n: report.measures.difference(normal[n], on[n], "test_error", True) for n in normal}
  p = {n: g.interval.p_value() for n, g in gaps.items()}
  assert p[500] < 0.05 and p[2000] > 0.9
  assert gaps[500].value == pytest.approx(-gain, abs=1e-9)
  c = report_claims.claim3(group, 0.9)
  assert c.verdict.status == status, c
  adjusted = stats.holm_adjusted([p[500], p[2000]])
  assert f"adjusted p {adjusted[0]:.3g} at N=500, 1 at N=2000)" in c.evidence
  if status == stats.INCONCLUSIVE:
    assert 0.05 < adjusted[0] == pytest.approx(2 * p[500])
    assert c.verdict.reason.startswith("no N's test error change differs from 0 after Holm's "
                                       f"correction across the 2 sizes (smallest adjusted p "
                                       f"{adjusted[0]:.3g}, at N=500: -2.5 points [")


def test_seed_level_intervals_with_two_or_more_seeds_and_fonts_clusters():
  """2+ seeds on the same rows: the seed-level t interval (the seeds' spread enters); with the
  records' font count F, FONTS rows are grouped by font ((row // 10) % F); one seed keeps
  Wilson's interval; arrays of different rows fall back to the image-level bootstrap."""
  rng = np.random.default_rng(7)
  seeds = [error_model("normal", 500, s, 0.2 + 0.03 * s, rng) for s in range(3)]
  m = report.measure(seeds, "test_error")
  y = np.stack([1.0 - x.outcomes["test_correct"] for x in seeds])
  assert m.interval == stats.seed_rate_interval(y) and m.note == ""
  assert m.value == pytest.approx(0.23) and m.seeds == 3
  one = report.measure(seeds[:1], "test_error")
  assert one.interval == stats.wilson_interval(200, TEST)
  fonts = [dataclasses.replace(x, record={**x.record, "fonts": {"count": 22, "digest": "d"}})
           for x in seeds]
  clustered = report.measure(fonts, "test_error")
  assert clustered.interval == stats.seed_rate_interval(y, clusters=(np.arange(TEST) // 10) % 22)
  assert clustered.interval != m.interval
  # On-manifold success over the rows attacked by every seed; a seed attacked on other rows.
  arrays = lambda rows: {"on_true_evaluated": np.ones(4, bool), "on_true_correct": np.ones(4, bool),
                         "on_true_success": np.array([[1, 0, 1, 0]] * 2, bool),
                         "on_true_rows": np.asarray(rows)}
  models = [report.Model({"variant": "normal", "n": 1, "seed": s}, arrays([0, 1, 2, 3]))
            for s in range(2)]
  assert isinstance(report.measure(models, "on_manifold_success").interval, stats.SeedInterval)
  models[1] = report.Model(models[1].record, arrays([4, 5, 6, 7]))
  shifted = report.measure(models, "on_manifold_success")
  assert shifted.note == report.measures.NOT_ALIGNED
  assert not isinstance(shifted.interval, stats.SeedInterval)


@pytest.mark.parametrize("estimate, lo, hi, suggested", [
    (-1.0, -3.0, 1.0, 12),  # half-width 2 over distance 1 from 0: 4x the data
    (0.0, -1.0, 1.0, 6),    # on the threshold: twice the models
    (-2.0, -2.5, 0.5, 4),   # nearly settled: at least one more
])
def test_more_seeds_scales_the_models_per_setting(estimate, lo, hi, suggested):
  m = report.Measure(estimate, stats.Interval(estimate, lo, hi), seeds=3)
  assert report_claims._more_seeds(m, 0.0) == (
      f"more models per setting: --config.models_per_size={suggested}")


def test_claim3_one_seed_is_too_few_even_with_a_clear_interval(tmp_path):
  add_claim3_models(tmp_path, (0,), -0.06, 0.4, 0.1)
  c = claims(tmp_path)[3]
  assert c["verdict"] == stats.INCONCLUSIVE
  assert c["reason"].startswith("too few seeds: 1 model per setting")
  assert c["settle"] == report.SETTLE_SEEDS
  assert c["interval"]["hi"] < 0  # the interval alone would have said held


def test_claim3_not_measured_and_near_chance(tmp_path):
  add_model(tmp_path, "normal", 500, 0, 0.2)
  c = claims(tmp_path)[3]
  assert c["verdict"] == stats.NOT_MEASURED and "on_adv_learned" in c["settle"]
  for seed in (0, 1):
    add_model(tmp_path, "on_adv_learned", 500, seed, 0.9)
    add_model(tmp_path, "normal", 500, seed, 0.89)
  c = claims(tmp_path)[3]
  assert c["verdict"] == stats.INCONCLUSIVE and c["reason"].startswith("models near chance")


# ---- Claim 4 ------------------------------------------------------------------------------------


def add_cross_check(workdir, variant, n, seed, rate, rng):
  """The cross-check of a model added by add_model: it breaks a share `rate` of the attacked
  inputs, and the union with the paper's attack is recorded as the attacks stage records it."""
  directory = os.path.join(workdir, "models", variant, f"n{n}", f"seed{seed}")
  arrays = outcomes.load(directory)
  cross = flags(rate, ATTACKED, rng)
  combined = arrays["off_success"] | cross[None]
  outcomes.save(directory, off_cross_success=cross, off_combined_success=combined)
  results.update_record(workdir, variant, n, seed, off_manifold_cross_check=["apgd-ce"],
                        off_manifold_cross_check_success=float(cross.mean()),
                        off_manifold_combined_success=float(combined.mean()),
                        off_manifold_combined_success_any=float(combined.any(0).mean()))


def add_claim4_models(workdir, seeds, gap, off, cross=0.02, n=1000):
  """normal and off_adv models at N=n, seeds `seeds`: normal misclassifies 10% of the test
  images (one seed's error 0.4 points above the last), off_adv the same images and a share
  `gap` more; the regular attack fools off_adv on a share `off` per restart and the
  cross-check (None: not run) on `cross`."""
  for seed in seeds:
    rng = np.random.default_rng(40 + seed)
    order = rng.permutation(TEST)
    base = 0.1 + 0.004 * seed
    wrong, robust_wrong = np.zeros(TEST, bool), np.zeros(TEST, bool)
    wrong[order[:round(base * TEST)]] = True
    robust_wrong[order[:round((base + gap) * TEST)]] = True
    add_model(workdir, "normal", n, seed, wrong, off=0.95, on=0.3, kind="true", rng=rng)
    add_model(workdir, "off_adv", n, seed, robust_wrong, off=off, on=0.3, kind="true", rng=rng)
    if cross is not None:
      add_cross_check(workdir, "off_adv", n, seed, cross, rng)


@pytest.mark.parametrize("seeds, gap, off, cross, status, obstacle", [
    (3, 0.0, 0.05, 0.02, stats.SHOWN, ""),
    (2, 0.0, 0.05, 0.02, stats.NOT_SHOWN, "2 seeds, fewer than 3"),
    (3, 0.0, 0.05, None, stats.NOT_SHOWN, "no cross-check attack"),
    (3, 0.04, 0.05, 0.02, stats.NOT_SHOWN, "the gap's upper end +4."),
    # An estimated gap of 1.5 points, below 2, whose interval's upper end is not:
    (3, 0.015, 0.05, 0.02, stats.NOT_SHOWN, "the gap's upper end +2."),
    (3, 0.0, 0.15, 0.02, stats.NOT_SHOWN, "the success's upper end "),
])
def test_claim4_is_shown_by_an_accurate_robust_cross_checked_configuration(
    tmp_path, seeds, gap, off, cross, status, obstacle):
  """An existence claim: shown only with 3 seeds, a gap below 2 points, a worst-case success of
  the paper's attack with the cross-check below 25%; else not shown, never "not held"."""
  add_claim4_models(tmp_path, range(seeds), gap, off, cross)
  c = claims(tmp_path, "fonts")[4]
  assert c["verdict"] == status, c
  assert obstacle in c["reason"] and obstacle in c["evidence"]
  if status == stats.NOT_SHOWN:
    assert c["reason"].startswith("no configuration is both accurate and robust with enough "
                                  "seeds and the cross-check: the sweep's models at N=1000: ")
  # The decisive interval: the worst case over restarts of the union (any restart or the
  # cross-check broke the input), the seed-level interval when there are 2 or more seeds.
  m = report.measure([x for x in report.load_groups([str(tmp_path)])[0].models
                      if x.setting == ("off_adv", 1000)], "off_manifold_success_any")
  assert c["interval"] == m.interval.as_dict()
  assert isinstance(m.interval, stats.SeedInterval) == (seeds >= 2)
  if cross is not None:
    rows = [outcomes.load(tmp_path / "models" / "off_adv" / "n1000" / f"seed{s}")
            for s in range(seeds)]
    worst = np.mean([o["off_combined_success"].any(0).mean() for o in rows])
    assert m.value == pytest.approx(worst)


def test_claim4_one_configuration_shows_it_beside_one_that_does_not(tmp_path):
  add_claim4_models(tmp_path, range(3), 0.0, 0.05, n=1000)
  add_claim4_models(tmp_path, range(3), 0.06, 0.05, n=2000)
  c = claims(tmp_path, "fonts")[4]
  assert c["verdict"] == stats.SHOWN
  assert c["evidence"].startswith("the sweep's models at N=1000 (3 seeds): off_adv changes test "
                                  "error by +0.0 points [")
  assert "(shows it); the sweep's models at N=2000 (3 seeds)" in c["evidence"]
  assert "(does not show it: the gap's upper end +6." in c["evidence"]
  assert c["interval_text"].endswith("(the sweep's models at N=1000)")


def test_claim4_is_checked_on_the_known_manifold_only(tmp_path):
  add_model(tmp_path, "normal", 1000, 0, 0.1, off=0.9, on=0.3)
  add_model(tmp_path, "off_adv", 1000, 0, 0.11, off=0.1, on=0.3)
  c = claims(tmp_path)[4]
  assert (c["verdict"], c["reason"]) == (stats.NOT_MEASURED,
                                         "checked on FONTS only, whose manifold is known")
  fonts = tmp_path / "fonts"
  add_model(fonts, "normal", 1000, 0, 0.1, off=0.9, on=0.3, kind="true")
  assert claims(fonts, "fonts")[4]["verdict"] == stats.NOT_MEASURED  # no off_adv model
  add_model(fonts, "off_adv", 1000, 0, 0.88, off=0.1, on=0.3, kind="true")
  assert claims(fonts, "fonts")[4]["reason"].startswith("models near chance")


# ---- The report and merged workdirs ------------------------------------------------------------


def full_run(workdir, seeds, fingerprint="f1"):
  add_claim3_models(workdir, seeds, -0.06, 0.4, 0.1, fingerprint)
  if 0 in seeds:
    add_distances(workdir, 0.85, 0.2)


def test_merged_workdirs_give_the_verdicts_of_one_run(tmp_path):
  full_run(tmp_path / "single", (0, 1, 2))
  full_run(tmp_path / "a", (0, 1))
  full_run(tmp_path / "b", (2,))
  add_distances(tmp_path / "b", 0.3, 0.2, model=("normal", 2000, 2))  # not the reference model
  full_run(tmp_path / "c", (1,))  # duplicates of models in a: counted once
  single = report.write_report(str(tmp_path / "single"), "fashion_mnist")
  merged = report.write_report([str(tmp_path / w) for w in "abc"], "fashion_mnist",
                               out=str(tmp_path / "merged"))
  load = lambda p: json.load(open(os.path.join(os.path.dirname(p), "claims.json")))["groups"]
  (one,), (many,) = load(single), load(merged)
  assert many["claims"] == one["claims"] and many["models"] == one["models"] == 12
  assert [c["verdict"] for c in one["claims"]] == [stats.HELD, stats.HELD, stats.HELD,
                                                    stats.NOT_MEASURED]
  assert "4 records of models already read from an earlier workdir were skipped" in open(
      merged).read()


def test_different_fingerprints_are_reported_apart(tmp_path):
  full_run(tmp_path / "a", (0, 1, 2), fingerprint="aaa")
  full_run(tmp_path / "b", (0, 1, 2), fingerprint="bbb")
  path = report.write_report([str(tmp_path / "a"), str(tmp_path / "b")], "fashion_mnist",
                             out=str(tmp_path / "out"))
  text = open(path).read()
  assert "come from 2 different configs (fingerprints aaa, bbb)" in text
  assert "## Group 1: config fingerprint aaa, 12 models" in text
  assert "## Group 2: config fingerprint bbb, 12 models" in text
  groups = json.load(open(tmp_path / "out" / "claims.json"))["groups"]
  assert [g["models"] for g in groups] == [12, 12]
  assert os.path.exists(tmp_path / "out" / "test_error_vs_n_2.png")


def test_report_opens_with_the_summary_and_what_the_scale_settles(tmp_path):
  add_claim3_models(tmp_path, (0,), -0.06, 0.4, 0.1)
  add_distances(tmp_path, 0.85, 0.2)
  text = open(report.write_report(str(tmp_path), "fashion_mnist")).read()
  lines = text.splitlines()
  table = lines.index("| claim | verdict | 95% interval | figure |")
  assert table < 8
  assert lines[table + 2].startswith(
      "| 1. Regular adversarial examples leave the manifold | **held** | residual ratio 0.85")
  assert lines[table + 2].endswith("| [off_manifold_share.png](off_manifold_share.png) |")
  assert "This run's scale settles claims 1 and 2." in text
  assert ("- Claim 3 is inconclusive: too few seeds: 1 model per setting, fewer than 3, so the "
          "interval does not cover the spread between training runs; to settle it: "
          + report.SETTLE_SEEDS) in text
  assert "- Claim 4 is not measured: checked on FONTS only" in text
  assert "3. On-manifold adversarial examples are generalization errors: **inconclusive**: " in text
  for figure in ("off_manifold_share.png", "test_error_vs_n.png", "distances.png"):
    assert os.path.exists(tmp_path / "report" / figure)


def test_written_claims_are_the_claims_the_report_judged(tmp_path):
  full_run(tmp_path, (0, 1, 2))
  assert report.written_claims(str(tmp_path)) is None  # no report written yet
  report.write_report(str(tmp_path), "fashion_mnist")
  written = report.written_claims(str(tmp_path))
  assert written == report.claims_summary(str(tmp_path), "fashion_mnist")
  assert [c["verdict"] for c in written] == [stats.HELD] * 3 + [stats.NOT_MEASURED]


def test_report_cli_merges_workdirs_and_rejects_missing_ones(tmp_path, capsys):
  full_run(tmp_path / "a", (0, 1))
  full_run(tmp_path / "b", (2,))
  results.write_json_atomic(str(tmp_path / "a" / "config.json"), {"dataset": "fashion_mnist"})
  out = str(tmp_path / "out")
  assert report.main(["--workdirs", str(tmp_path / "a"), str(tmp_path / "b"), "--out", out]) == 0
  assert f"Report: {out}/report.md" in capsys.readouterr().out
  assert "# dmr report: fashion_mnist" in open(f"{out}/report.md").read()
  with pytest.raises(SystemExit):
    report.main(["--workdirs", str(tmp_path / "nothing"), "--out", out])
  assert f"no results.json in {tmp_path}/nothing" in capsys.readouterr().err


def test_rates_count_only_correct_and_evaluated_inputs(tmp_path):
  # 4 attacked inputs, 2 restarts: input 0 misclassified (its "successes" must not count), input
  # 3 left out of the on-manifold rate (|mu| > 2); the rest succeed on 1 of 2 restarts.
  success = np.array([[1, 1, 0, 1], [1, 0, 1, 1]], bool)
  counted = np.array([0, 1, 1, 1], bool)
  arrays = {"test_correct": np.array([0, 1, 1, 1, 1], bool), "off_correct": counted,
            "off_success": success, "on_learned_evaluated": np.array([1, 1, 1, 0], bool),
            "on_learned_correct": counted, "on_learned_success": success}
  model = report.Model({"variant": "normal", "n": 10, "seed": 0}, arrays)
  values = {metric: report.measure([model], metric).value for metric in report.METRICS}
  assert values == pytest.approx({
      "test_error": 0.2, "off_manifold_success": 4 / 6, "off_manifold_success_any": 1.0,
      "on_manifold_success": 0.5, "on_manifold_success_any": 1.0})


# ---- Real smoke runs (tests/data: results.json and the per-image outcomes, trimmed) ------------

DATA = os.path.join(os.path.dirname(__file__), "data")


def test_report_of_a_fashion_smoke_run_gives_its_verdicts_and_numbers(tmp_path):
  """A Fashion-MNIST smoke run (1 model per setting, N=200): every claim undecided for its own
  reason, the rates as its outcomes give them."""
  text = open(report.write_report(os.path.join(DATA, "smoke-fashion"), "fashion_mnist",
                                  out=str(tmp_path))).read()
  (group,) = json.load(open(tmp_path / "claims.json"))["groups"]
  got = {c["claim"]: c for c in group["claims"]}
  assert (group["fingerprint"], group["models"]) == ("1bc8b8566409", 3)
  assert [c["verdict"] for c in got.values()] == [stats.INCONCLUSIVE] * 3 + [stats.NOT_MEASURED]
  assert got[1]["interval"]["estimate"] == pytest.approx(1.011964, abs=1e-6)
  # A ratio above 1 is printed as a residual ratio, never as a share above 100%.
  assert got[1]["interval_text"].startswith("residual ratio 1.012 [")
  assert "101.2%" not in text and "101.2%" not in got[1]["evidence"]
  assert got[1]["reason"].startswith("manifold fit too coarse: a direction along the manifold "
                                     "has the residual ratio 0.836 [0.820, 0.852]")
  assert got[2]["reason"] == "the 95% interval of the on-manifold success [0, 0.434] contains 0.05"
  assert got[3]["interval_text"] == "test error change -4.7 points [-5.4, -4.0] at N=200"
  assert got[3]["reason"].startswith("too few seeds: 1 model per setting")
  for row in ("| normal | 200 | 1 | 81.6% [80.8, 82.3] | 100.0% [67.6, 100.0] | 100.0% [67.6, "
              "100.0] | 0.0% [0.0, 43.4] | 0.0% [0.0, 43.4] |",
              "| on_adv_learned | 200 | 1 | 76.9% [76.1, 77.7] | 100.0% [72.2, 100.0] | 100.0% "
              "[72.2, 100.0] | 0.0% [0.0, 43.4] | 0.0% [0.0, 43.4] |",
              "| learned: tangent_off_manifold_fraction | 0.8357 |"):
    assert row in text.splitlines()


def test_report_of_a_fonts_smoke_run_reads_the_true_manifold_first(tmp_path):
  """A FONTS smoke run (every variant, both manifolds, N=200): models near chance, so every claim
  is inconclusive for that reason; the on-manifold rates are those on the true manifold."""
  text = open(report.write_report(os.path.join(DATA, "smoke-fonts"), "fonts",
                                  out=str(tmp_path))).read()
  (group,) = json.load(open(tmp_path / "claims.json"))["groups"]
  got = {c["claim"]: c for c in group["claims"]}
  assert (group["fingerprint"], group["models"]) == ("aedbeaffdf09", 6)
  assert [c["verdict"] for c in got.values()] == [stats.INCONCLUSIVE] * 4
  near = "models near chance (test error 90%): normal N=200 (89.5% [84.5, 93.0])"
  assert got[1]["reason"] == got[2]["reason"] == near
  assert got[4]["reason"] == near + ", off_adv N=200 (86.5% [81.1, 90.6])"
  assert got[2]["interval_text"] == "success 37.5% [0.0, 75.0] (threshold 5.0%)"
  assert got[4]["interval_text"] == "gap -3.0 points [-7.0, +1.0], success 100.0% [51.0, 100.0]"
  assert ("| on_adv_true | 200 | 1 | 89.0% [83.9, 92.6] | 100.0% [43.9, 100.0] | 100.0% [43.9, "
          "100.0] | 16.7% [0.0, 50.0] | 33.3% [6.1, 79.2] |") in text.splitlines()
  record = next(r for r in results.load(os.path.join(DATA, "smoke-fonts"))["records"]
                if r["variant"] == "on_adv_true")
  assert record["on_true_success"] == pytest.approx(1 / 6)  # the table's 16.7%, not learned's
  assert record["on_learned_success"] != record["on_true_success"]


def test_report_of_claim4_family_counts_the_cross_check(tmp_path):
  """A FONTS smoke run of claim 4's own family (mlp, 1 epoch) with the cross-check: claim 4 on the
  family, its success the union of the paper's attack and the cross-check."""
  report.write_report(os.path.join(DATA, "smoke-claim4"), "fonts", out=str(tmp_path))
  (group,) = json.load(open(tmp_path / "claims.json"))["groups"]
  got = {c["claim"]: c for c in group["claims"]}
  assert [c["verdict"] for c in got.values()] == [
      stats.NOT_MEASURED, stats.INCONCLUSIVE, stats.NOT_MEASURED, stats.INCONCLUSIVE]
  assert got[4]["interval_text"] == "gap +7.5 points [+0.5, +14.0], success 100.0% [43.9, 100.0]"
  assert got[4]["evidence"].startswith(
      "claim 4's own models (mlp, 1 epoch) at N=200 (1 seed): off_adv changes test error by "
      "+7.5 points [+0.5, +14.0] (normal: 83.5% [77.7, 88.0]) and the worst case over restarts "
      "succeeds on 100.0% [43.9, 100.0]")
  assert "(does not show it: near chance: normal N=200 (83.5% [77.7, 88.0])" in got[4]["evidence"]
  assert ("counting the paper's attack or the cross-check apgd-ce, apgd-t, whichever breaks the "
          "input (the paper's attack alone: 100.0% [43.9, 100.0]; the cross-check alone: 100.0% "
          "[43.9, 100.0])") in got[4]["evidence"]
