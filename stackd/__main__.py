from stackd.cli.main import main

raise SystemExit(main())
