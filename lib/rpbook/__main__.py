from rpbook.cli import main

raise SystemExit(main())
