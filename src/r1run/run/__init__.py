"""Running a model: the one run configuration (config.decide), its preparation, one-shot and interactive chat,
llama-server, and the plan command's core. See docs/architecture.md."""
