"""placeholder while /v1 grows"""


def routes(ws):
    return []
