"""unlearnkit: machine unlearning for image classifiers, and the measurement of whether it worked."""

__version__ = "0.1.0"
