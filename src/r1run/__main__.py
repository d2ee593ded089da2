from r1run.entry import main

main()
