from codejury.cli import main

main()
