# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing, installs torch==2.13.0 first (a CPU build; without the pin
# pip would pull a multi-GB CUDA build), then the project, then does its job.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0

.PHONY: demo test test-slow test-oldest test-zoo lint install clean sysdeps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/slimkit demo

test: $(STAMP) sysdeps
	$(BIN)/ruff check slimkit tests benchmarks zoo
	$(BIN)/python -m pytest

test-slow: $(STAMP) sysdeps test-oldest
	$(BIN)/python -m pytest -m slow

# The export and latency tests once more with the oldest runtimes and converters pyproject.toml
# declares: a venv holding only those pins, which sees .venv's packages behind its own.
OLDEST := .venv-oldest
OLDEST_PINS := onnxruntime==1.19.2 openvino==2024.4.0 onnx==1.17.0 onnxscript==0.7.0
OLDEST_TESTS := tests/deploy tests/latency tests/bench tests/search/test_latency.py \
	tests/quant/mixed_precision/test_latency_cost.py tests/pipeline/test_benchmark_stage.py
$(OLDEST)/.installed: $(STAMP) Makefile
	test -x $(OLDEST)/bin/python || $(PY) -m venv $(OLDEST)
	$(OLDEST)/bin/pip install -q --no-deps $(OLDEST_PINS)
	$(BIN)/python -c "import site; print('import site; site.addsitedir(%r)' % site.getsitepackages()[0])" \
	  > "$$($(OLDEST)/bin/python -c 'import site; print(site.getsitepackages()[0])')/main-venv.pth"
	touch $@

test-oldest: $(OLDEST)/.installed sysdeps
	$(OLDEST)/bin/python -c "import onnxruntime, openvino, onnx, onnxscript; \
	  print('oldest declared:', 'onnxruntime', onnxruntime.__version__, '· openvino', \
	        openvino.__version__.split('-')[0], '· onnx', onnx.__version__, '· onnxscript', \
	        onnxscript.__version__)"
	$(OLDEST)/bin/python -m pytest -m 'slow or not slow' $(OLDEST_TESTS)

# System packages the tests use, installed where this machine can (root + apt-get):
#   qemu-user  runs ONNX Runtime on an emulated AVX2 CPU without VNNI (tests/deploy/test_emulate.py)
#   chromium   renders report.html headless (tests/pipeline/test_browser.py)
#   postgresql a real server in a temporary directory for the search's storage (tests/search)
# Elsewhere those tests skip and say why.
SYSPKGS := qemu-x86_64:qemu-user chromium:chromium initdb:postgresql
sysdeps:
	@for pair in $(SYSPKGS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 && continue; \
	  ls /usr/lib/postgresql/*/bin/$$cmd >/dev/null 2>&1 && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -qq $$pkg >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $$pkg >/dev/null 2>&1; } || \
	      echo "note: could not install $$pkg; the tests that need it will skip"; \
	  else echo "note: $$pkg is not installed; the tests that need it will skip"; fi; \
	done

# The model zoo: every torchvision classifier, and BERT / ViT / GPT-2 from transformers configs,
# pruned to 50% channels. torchvision needs its matching torch (2.14.1, a large build), so it
# lives in its own venv; CI does not run it.
ZOO := .venv-zoo
$(ZOO)/.installed: pyproject.toml
	test -x $(ZOO)/bin/python || $(PY) -m venv $(ZOO)
	$(ZOO)/bin/pip install -q --upgrade pip
	$(ZOO)/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	$(ZOO)/bin/pip install -q -e . transformers
	touch $@

test-zoo: $(ZOO)/.installed
	$(ZOO)/bin/python zoo/prune_torchvision.py --tables

lint: $(STAMP)
	$(BIN)/ruff check slimkit tests benchmarks zoo

clean:
	rm -rf $(VENV) $(OLDEST) $(ZOO) .slimkit runs .pytest_cache .ruff_cache
