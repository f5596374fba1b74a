"""bitnet_harness: the conformance runner (contracts, differential suites, fuzzing, reports)."""
