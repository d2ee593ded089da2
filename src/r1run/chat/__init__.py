"""Running a model: `r1run chat` (one-shot and interactive) and the tuning both share with `serve`."""
