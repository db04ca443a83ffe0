"""Running suites: the plan (preflight), THE executor interface (:mod:`memcomp.exec.executor`:
inline, child processes, Ray, SLURM and plugins' executors behind it), the progress event, the
cell child."""
