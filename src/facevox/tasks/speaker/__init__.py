"""Speaker verification: corpora and trials, training, scoring, evaluation, the CLI commands."""
