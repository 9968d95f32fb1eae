from cnnsheet.cli import main

main()
