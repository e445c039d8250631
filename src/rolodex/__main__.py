from rolodex.cli.main import main

main()
