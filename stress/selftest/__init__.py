"""mmrace's tests of itself, shipped with the tool: mutants, benchmarks, known-answer corpora.

`mutants` races every built-in bug variant and the correct targets (`mmrace mutants`); the
`bench_*` modules measure speed (`mmrace bench`); `porcupine`, `kv` and `register` read the
Porcupine checker's known-answer histories and model them, to check the engine against a peer.
None of it is on the path of a run: these are fixtures, not product.
"""
