"""Text: classifiers, reference models, constraints and attacks for discrete text (see docs/text.md)."""
