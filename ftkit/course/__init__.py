"""The course: what the lessons use beyond the library itself.

- ``lesson``: ``start_lesson``, the offline and online scenarios, ``by_device``;
- ``check``: the self-checks of each lesson (``ft.check.lesson03.q1(answer)``);
- ``doctor``: ``ftkit doctor``, what this machine offers;
- ``lessons_cli``: ``ftkit lessons``, the learner's copy of the lessons.

May import: every layer below (``core`` ... ``widgets``).
"""
