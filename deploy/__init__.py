"""What production runs: the Procfile and the files generated from it (deploy/generate.py)."""
