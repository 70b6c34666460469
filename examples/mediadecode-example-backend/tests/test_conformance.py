"""The example backend passes mediadecode's conformance kit: one subclass, one attribute."""

from mediadecode.testing import BackendConformance


class TestExampleBackend(BackendConformance):
    backend_name = "example"
