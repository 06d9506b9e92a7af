"""The studies: drivers that train, score and compare runs, apart from the library they measure.

`demo` (`nextx demo`, `bench/steps_saved.py`) and `arms` (the jump variants it compares),
`measure` (steps saved, paired, with intervals), `dgo_compare` (GRPO vs DGO), `plot` (PNG
diagnostics), `options` (the paired-seeds benches' shared options), `machine` (the host a speed
figure was measured on), `synthetic` and `dynamics` (runs with known shapes and dynamics for the
speed and accuracy benches). They sit above `nextx.train` and `nextx.jump`; the library never
imports them, and `bench/` scripts import only them and the public API.
"""
