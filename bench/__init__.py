"""netspec's benchmark suite: ``python -m bench [--quick] [--out DIR] [--only SECTION ...]``.

Every section compares netspec with a baseline measured in the same run, interleaved with it,
after a warm-up, and reports the median ratio with its spread. Results go to
``bench/results/latest.md`` and ``bench/results/latest.json`` (machine, versions, date).
Nothing here is a test: it asserts nothing about time.
"""
