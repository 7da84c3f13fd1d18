"""Reports: HTML and PNG from results, comparison of runs."""
