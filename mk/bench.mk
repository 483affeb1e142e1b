# Benchmarks: measurements, not tests (nothing here fails on a slow machine). Each
# bench/<name>.py writes reports/bench/<name>.json through bench/_report.py; files starting
# with "_" are helpers. `make bench BENCH=rag` runs one. http_server drives loopback servers
# with wrk (Debian package `wrk`); chat serves the sample textbook like `make serve`.
# Figures and how to read them: docs/bench.md.
BENCH_SCRIPTS := $(sort $(filter-out bench/_%.py,$(wildcard bench/*.py)))
BENCH ?=

.PHONY: bench
bench: venv ## benchmarks (ingest throughput, search/answer latency, ...) -> reports/bench/*.json
	@set -e; for script in $(if $(BENCH),bench/$(BENCH).py,$(BENCH_SCRIPTS)); do \
	  echo "== bench $$script"; $(PY) $$script; \
	done

# One page of the latest reports/ (bench, eval, e2e): tables, and the deploy benchmark's
# latency-over-time figure (matplotlib, pinned in the dev extra).
.PHONY: report
report: venv ## the latest reports/ (bench, eval, e2e) as one Markdown page -> reports/report.md
	$(PY) bench/_page.py
