"""The study's released results, shipped with the package and imported as eval runs."""
