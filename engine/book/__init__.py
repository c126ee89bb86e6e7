"""Order books: L2 price levels and L3 order-by-order, fast and reference versions (engine thread).

`L2Book` and `L3Book` are the ones to use; `ReferenceL2Book` and `ReferenceL3Book` are the slow, obviously
correct specifications they are tested against. All four share one API and refuse bad operations with a
`BookError` carrying a BOOK_* reason code, leaving the book unchanged.
"""

from engine.book.l2 import L2Book
from engine.book.l3 import L3Book
from engine.book.reference import BookError, ReferenceL2Book, ReferenceL3Book

__all__ = ["BookError", "L2Book", "L3Book", "ReferenceL2Book", "ReferenceL3Book"]
