"""The stages' own helpers (the stages themselves run end to end in tests/test_pipeline.py)."""
from dmr import attacking


def test_attack_log_line_gives_each_attack_its_rates_once():
  fields = {"off_manifold_success": 0.982, "off_manifold_success_any": 0.99,
            "off_manifold_verified": 412, "on_learned_success": 0.125,
            "on_learned_success_any": 0.141, "on_learned_verified": 57,
            "on_manifold_success": 0.125, "on_manifold_success_any": 0.141,
            "off_manifold_cross_check_success": 0.5, "outcomes": "models/x/outcomes.npz"}
  assert attacking.success_text(fields) == (
      "off-manifold 98.2% (any restart 99.0%, 412 verified), off-manifold cross check 50.0%, "
      "on learned 12.5% (any restart 14.1%, 57 verified)")
