"""Mutations of the seed-level intervals, the FONTS test rows and claim 1's tangent-space share."""
from mutations import Mutation

MUTATIONS = [
    Mutation("seed_level_dropped", "the seeds' spread is taken for image noise alone (images "
             "independent across seeds)", "dmr/stats.py",
             "  seeds = sum(seed_terms)\n", "  seeds = sum(noise_terms)\n",
             ("tests/test_coverage.py",)),
    Mutation("seed_df_satterthwaite", "Satterthwaite's degrees of freedom without the shrinkage",
             "dmr/stats.py", "DF_SHRINK_ONE_DF, DF_SHRINK = 0.15, 0.3",
             "DF_SHRINK_ONE_DF, DF_SHRINK = 1.0, 1.0", ("tests/test_coverage.py",)),
    Mutation("fonts_rows_first_fonts", "attacked FONTS rows taken from the first fonts",
             "dmr/data/fonts.py", "  order = np.random.default_rng(seed).permutation(fonts)\n",
             "  order = np.arange(fonts) // 2\n", ("tests/test_fonts_rows.py",)),
    Mutation("tangent_share_full_jacobian_rank", "the tangent space keeps the Jacobian's null "
             "directions", "dmr/distances.py", "  basis = u * (s > rank_tol * s[0])",
             "  basis = u", ("tests/test_distances.py",)),
]
