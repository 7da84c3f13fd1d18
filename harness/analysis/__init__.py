"""Reading results for a verdict: `stats` (bootstrap CIs, rank tests, paired ratios),
`compare` (two runs or two sides, cell by cell), `stability` (do two runs agree?) and
`history` (trends and steps over many runs).

May import `harness.core` and `harness.store`.
"""
