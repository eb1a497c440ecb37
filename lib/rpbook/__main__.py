from rpbook.runbook.cli import main

raise SystemExit(main())
