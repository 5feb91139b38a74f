# Two commands for a fresh clone:  `make book`  and  `make test`.
PYTHON  ?= python3
PROFILE ?= small
BUILD   := _build

.PHONY: setup book pdf test test-unit test-notebooks test-browser bench bench-smoke student student-check release clean

# Install what is missing. torch is installed only when absent, pinned to the
# local CPU build; an existing torch (Colab's CUDA build, say) is kept.
setup: .setup-stamp
.setup-stamp: requirements.txt pyproject.toml
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -q -r requirements.txt
	$(PYTHON) -m pip install -q --no-deps -e .
	$(PYTHON) -m ipykernel install --user --name python3 >/dev/null
	@touch $@

# Build the book (strict: a cell error or a Sphinx warning fails). Each profile
# has its own execution cache, so a full-profile build never reuses small outputs.
# The per-profile config lives in $(BUILD)/, so the path of the book's own Sphinx
# extensions (book/_ext, relative to _config.yml) becomes absolute there.
book: setup
	@mkdir -p $(BUILD)
	sed -e 's#_build/.jupyter_cache/small#_build/.jupyter_cache/$(PROFILE)#' \
	    -e 's#: book/_ext$$#: $(CURDIR)/book/_ext#' _config.yml > $(BUILD)/_config.$(PROFILE).yml
	COURSE_PROFILE=$(PROFILE) COURSE_STATIC_WIDGETS=1 \
	  jupyter-book build . --config $(BUILD)/_config.$(PROFILE).yml -W --keep-going
	$(PYTHON) scripts/check_book.py $(BUILD)/html
	@echo "HTML: $(BUILD)/html/index.html"

# The book as one PDF (_build/pdf/book.pdf): the built HTML printed page by page in headless
# Chromium (the browser test's driver) and joined with pypdf; run after `make book`.
pdf:
	@$(PYTHON) -c "import pypdf" 2>/dev/null || $(PYTHON) -m pip install -q pypdf
	$(PYTHON) scripts/make_pdf.py --html-dir $(BUILD)/html --output $(BUILD)/pdf/book.pdf

# Every test: unit and property tests, exercise checks, then each chapter with nbval.
test: setup
	COURSE_PROFILE=small MPLBACKEND=Agg $(PYTHON) -m pytest tests
	COURSE_PROFILE=small $(PYTHON) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

# The built book in headless Chromium (Debian's chromium + chromium-driver); run after `make book`.
# axe-core (accessibility) comes from npm into browser_tests/node_modules (package-lock.json).
# Screenshots and a per-page table go to _build/screenshots/.
test-browser:
	@test -f browser_tests/node_modules/axe-core/axe.min.js || (cd browser_tests && npm ci --no-audit --no-fund)
	$(PYTHON) -m pytest -p no:cacheprovider browser_tests --html-dir $(BUILD)/html --screenshots $(BUILD)/screenshots

test-unit: setup
	COURSE_PROFILE=small MPLBACKEND=Agg $(PYTHON) -m pytest tests

# Benchmarks (benchmarks/README.md: the protocol). The peers (stable-baselines3, pymdptoolbox,
# zuko) are benchmark-only extras; --no-deps keeps the installed torch.
# bench: every benchmark at its default -> benchmarks/RESULTS.md (run it on an idle machine).
# bench-smoke: every benchmark once, peers included, on the CPU, with the full profile's code path
# and a tiny budget (CHAPTER_STANDARD: a path that has never run does not work); the commands
# are listed in benchmarks/run_all.py.
MNIST_ROOT ?= ../shared/data/mnist
bench-setup: setup
	@$(PYTHON) -c "import stable_baselines3" 2>/dev/null || $(PYTHON) -m pip install -q --no-deps "stable-baselines3>=2.3"
	@$(PYTHON) -c "import mdptoolbox" 2>/dev/null || $(PYTHON) -m pip install -q "pymdptoolbox>=4.0b3"
	@$(PYTHON) -c "import zuko" 2>/dev/null || $(PYTHON) -m pip install -q --no-deps "zuko>=1.6"

bench: bench-setup
	$(PYTHON) benchmarks/run_all.py --output benchmarks/RESULTS.md

bench-smoke: bench-setup
	$(PYTHON) benchmarks/run_all.py --smoke --root $(MNIST_ROOT)

# Student notebooks (student/, committed) and autograder zips (dist/<chapter>/autograder/).
# One chapter: make student CHAPTER=04_reinforce. A dist/<chapter> folder holding anything besides
# the generated student/ and autograder/ (a grades CSV, say) is refused unless FORCE=1.
# make student-check fails when student/ is out of date with the masters (CI runs it).
CHAPTER ?=
FORCE   ?=
student: setup
	$(PYTHON) grading/make_student.py --out dist $(if $(FORCE),--force,) $(if $(CHAPTER),--chapter $(CHAPTER),)

student-check:
	$(PYTHON) grading/make_student.py --check $(if $(CHAPTER),--chapter $(CHAPTER),)

# The release files: HEAD must carry the tag v<course_lib.__version__> (or TAG=v... naming a tag on
# HEAD). Builds the course_lib wheel from the tagged commit and every chapter's autograder zip
# (make student) into dist/release/, listed in dist/release/FILES.txt. See CHANGELOG.md.
TAG ?=
release: setup
	$(PYTHON) scripts/release.py $(if $(TAG),--tag $(TAG),)

clean:
	rm -rf $(BUILD) dist .setup-stamp
