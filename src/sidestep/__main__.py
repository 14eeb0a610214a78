from sidestep.cli.main import main

raise SystemExit(main())
