"""Quartz ``job_scheduling_data`` XML: a safe, line-tracked reader into a :class:`Node` tree.

``read_tree(data)`` parses a document into :class:`Node` elements; every problem found later
is an :class:`Issue` located by line. The schema rules are in :mod:`crontab_import.quartz.schema`,
values read as Java reads them in :mod:`crontab_import.quartz.values`.

Reading the XML
  Only through defusedxml's SAX driver: a DOCTYPE (hence every entity declaration: billion
  laughs, XXE) is refused at once, as Quartz itself refuses it. Elements nested deeper than
  ``MAX_DEPTH`` are refused too (Quartz documents are six levels deep). Each element keeps the
  line where its start tag begins; errors and ``SourceLocation.line`` use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO
from typing import Any
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import InputSource

from defusedxml.common import DefusedXmlException, DTDForbidden
from defusedxml.expatreader import DefusedExpatParser

from bridge.core.errors import InputError, ParseError

NS = "http://www.quartz-scheduler.org/xml/JobSchedulingData"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MAX_DEPTH = 32
WS = " \t\n\r"  # XML white space


@dataclass
class Node:
    tag: str
    ns: str
    line: int
    attrs: dict[tuple[str | None, str], str] = field(default_factory=dict)
    parts: list[Node | str] = field(default_factory=list)  # text and children, in order
    end_line: int = 0

    @property
    def children(self) -> list[Node]:
        return [p for p in self.parts if isinstance(p, Node)]

    @property
    def text(self) -> str:
        """The element's own text (not its descendants')."""
        return "".join(p for p in self.parts if isinstance(p, str))

    def kids(self, tag: str) -> list[Node]:
        return [c for c in self.children if c.ns == NS and c.tag == tag]

    def first(self, tag: str) -> Node | None:
        found = self.kids(tag)
        return found[0] if found else None

    def line_of(self, tag: str) -> int:
        node = self.first(tag)
        return node.line if node else self.line

    def string_value(self) -> str:
        """XPath string value: the text of the element and all its descendants, in order."""
        out: list[str] = []
        stack: list[Node | str] = [self]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                out.append(item)
            else:
                stack.extend(reversed(item.parts))
        return "".join(out)

    def value(self, tag: str) -> str | None:
        """Quartz's ``getTrimmedToNullString``: first child's trimmed text, None if empty."""
        node = self.first(tag)
        text = node.string_value().strip(WS) if node else ""
        return text or None


class _TreeBuilder(ContentHandler):
    def __init__(self, max_triggers: int | None = None) -> None:
        super().__init__()
        self.root: Node | None = None
        self._stack: list[Node] = []
        self._locator: Any = None
        self._max_triggers = max_triggers
        self._triggers = 0

    def setDocumentLocator(self, locator: Any) -> None:
        self._locator = locator

    def _line(self) -> int:
        return int(self._locator.getLineNumber() or 0) if self._locator else 0

    def startElementNS(self, name: Any, qname: Any, attrs: Any) -> None:
        if len(self._stack) >= MAX_DEPTH:
            raise ParseError(f"elements nested deeper than {MAX_DEPTH} levels", line=self._line())
        ns, local = name
        if local == "trigger" and self._max_triggers is not None:
            self._triggers += 1
            if self._triggers > self._max_triggers:
                raise InputError(
                    f"more than {self._max_triggers} triggers: refused while reading",
                    line=self._line(),
                    hint="raise --max-jobs if this is intended",
                )
        node = Node(tag=local, ns=ns or "", line=self._line(), attrs=dict(attrs.items()))
        if self._stack:
            self._stack[-1].parts.append(node)
        else:
            self.root = node
        self._stack.append(node)

    def endElementNS(self, name: Any, qname: Any) -> None:
        self._stack.pop().end_line = self._line()

    def characters(self, content: str) -> None:
        if self._stack:
            self._stack[-1].parts.append(content)


def read_tree(data: bytes, *, max_triggers: int | None = None) -> Node:
    """Parse with defusedxml (no DTD, no entities, no external references) into a Node tree.

    ``max_triggers``: an :class:`InputError` (not a ParseError: the import stops) as soon as
    the document's ``trigger`` elements exceed it, before the rest is read."""
    builder = _TreeBuilder(max_triggers)
    parser = DefusedExpatParser(
        namespaceHandling=1, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    parser.setContentHandler(builder)
    source = InputSource()
    source.setByteStream(BytesIO(data))
    try:
        parser.parse(source)
    except DTDForbidden as e:
        raise ParseError(
            "a DOCTYPE is not allowed (Quartz refuses it too; entity declarations are how "
            "billion-laughs and XXE attacks work)",
            line=_parser_line(parser),
        ) from e
    except DefusedXmlException as e:
        raise ParseError(f"refused XML construct: {e}", line=_parser_line(parser)) from e
    except SAXParseException as e:
        raise ParseError(f"not well-formed XML: {e.getMessage()}", line=e.getLineNumber()) from e
    except (ValueError, LookupError) as e:
        raise ParseError(f"unreadable XML: {e}", line=_parser_line(parser)) from e
    if builder.root is None:
        raise ParseError("no root element", line=1)
    return builder.root


def _parser_line(parser: Any) -> int | None:
    try:
        return int(parser.getLineNumber())
    except (AttributeError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Issue:
    line: int | None
    message: str
    fatal: bool = True  # Quartz rejects the whole file for it
