"""Benchmarking with llama-bench: sweeps, the bandwidth bound, saved results and tuned profiles.

    sweep.py    option lists -> llama-bench invocations (pure)
    runner.py   one llama-bench run -> rows (median and spread per configuration)
    bound.py    % of the memory-bandwidth bound per row
    core.py     `r1run bench`: r1run's default configuration, the sweep, the report
    store.py    --save / --history (R1RUN_HOME/results/bench.jsonl), model sha256 cache, machine fingerprint
    tune.py     --tune: coordinate descent over the knobs that matter
    profile.py  the tuned profiles `chat` and `serve` apply (R1RUN_HOME/profiles/)
"""
