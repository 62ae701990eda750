"""`python -m forecastscaler.cli`, as the `forecastscaler` command."""

from forecastscaler.cli import main

raise SystemExit(main())
