"""Every name the package exports resolves."""

import unlearnkit


def test_every_exported_name_resolves():
    for name in unlearnkit.__all__:
        assert getattr(unlearnkit, name) is not None, name
