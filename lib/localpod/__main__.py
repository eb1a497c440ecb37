from localpod.cli import main

raise SystemExit(main())
