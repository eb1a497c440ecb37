"""records: what runs leave behind (runbook 07 reads them): figures, run folders, cost receipts, the
history and its report, parking. Imports from account and core."""
