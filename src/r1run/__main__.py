from r1run.cli.app import main

main()
