from api.cli import build_parser


def test_parser_lists_serve():
    parser = build_parser()
    args = parser.parse_args(["serve", "--port", "9999"])
    assert args.port == 9999 and callable(args.func)
