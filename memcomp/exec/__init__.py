"""Running cells: schedulers (local processes, Ray, SLURM), GPU pinning, merging results."""
