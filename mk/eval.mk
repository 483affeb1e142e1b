# Retrieval evaluation: the question set bench/eval/questions.yaml searched through the
# store the API opens, once per settings variant (chunk size, heading context, stemming,
# stopwords; BM25 + dense only when an embeddings provider is configured). A measurement,
# not a test: it reports hit@1, hit@5 and MRR@10 under reports/eval/ and never fails on a
# score. `make eval EVAL_VARIANTS="default chunks-800"` runs some variants only.
EVAL_VARIANTS ?=

.PHONY: eval
eval: venv ## retrieval quality (hit@1, hit@5, MRR@10 per variant) -> reports/eval/*.json
	$(PY) bench/eval/evaluate.py $(foreach v,$(EVAL_VARIANTS),--variant $(v))
