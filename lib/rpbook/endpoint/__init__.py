"""endpoint: one endpoint at work (runbooks 03–05): chat and embeddings checks, keep-alive,
conversations and load tests. Imports from account and core."""
