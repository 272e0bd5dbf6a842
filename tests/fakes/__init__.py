"""In-memory fakes of the shared package's ports (:mod:`clip_classifier.ports`), for fast tests of the core
flows without moto. ``tests/unit/storage/test_results_contract.py`` runs one set of scenarios against these
fakes and against the DynamoDB adapter on moto, so a fake cannot drift from what it stands for."""
