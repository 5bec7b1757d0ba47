"""ClassMap: ordered class names with stable ids, colours, skeletons, supercategories."""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class ClassInfo:
    name: str
    id: int
    color: str | None = None  # "#rrggbb"
    supercategory: str | None = None
    keypoints: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()  # 1-based pairs into keypoints, as COCO

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a class name must not be empty")


def default_color(index: int) -> str:
    """Well-separated colours by golden-ratio hue steps, the same on every machine."""
    h = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.65, 0.95)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


@dataclass
class ClassMap:
    """Ordered classes. Names and ids are both unique; order is the order given.

    Readers fill it from the format (COCO's sparse category ids are kept as
    they were; YOLO's 0-based indices; VOC has names only and gets 0, 1, ...
    in order of appearance). Writers that need their own ids (YOLO's 0..n-1)
    map by position at their edge.
    """

    classes: list[ClassInfo] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_name: dict[str, ClassInfo] = {}
        self._by_id: dict[int, ClassInfo] = {}
        self._position: dict[str, int] = {}
        items, self.classes = self.classes, []
        for c in items:
            self._insert(c)

    def _insert(self, info: ClassInfo) -> ClassInfo:
        if info.name in self._by_name:
            raise ValueError(f"duplicate class name {info.name!r}")
        if info.id in self._by_id:
            raise ValueError(f"duplicate class id {info.id} ({self._by_id[info.id].name!r} and {info.name!r})")
        self._position[info.name] = len(self.classes)
        self.classes.append(info)
        self._by_name[info.name] = info
        self._by_id[info.id] = info
        return info

    @classmethod
    def from_names(cls, names: Iterable[str], *, start: int = 0) -> ClassMap:
        return cls([ClassInfo(n, i) for i, n in enumerate(names, start=start)])

    def add(self, name: str, *, id: int | None = None, **kw: object) -> ClassInfo:
        """Add a class (id: the next free one) or return the existing one of that name."""
        if name in self._by_name:
            return self._by_name[name]
        if id is None:
            id = max(self._by_id, default=-1) + 1
        return self._insert(ClassInfo(name, id, **kw))  # type: ignore[arg-type]

    def replace(self, name: str, **changes: object) -> None:
        old = self._by_name[name]
        new = replace(old, **changes)  # type: ignore[arg-type]
        i = self.classes.index(old)
        self.classes[i] = new
        del self._by_id[old.id]
        self._by_name[name] = new
        self._by_id[new.id] = new

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> ClassInfo:
        return self._by_name[name]

    def by_id(self, id: int) -> ClassInfo | None:
        return self._by_id.get(id)

    def get(self, name: str) -> ClassInfo | None:
        return self._by_name.get(name)

    def index(self, name: str) -> int:
        """0-based position, what YOLO-style formats write."""
        return self._position[name]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def __iter__(self) -> Iterator[ClassInfo]:
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    def color(self, name: str) -> str:
        info = self._by_name[name]
        return info.color or default_color(self._position[name])


@dataclass(frozen=True)
class ClassMapping:
    """Rename, merge and drop classes: `{old: new}` (several olds to one new merge), `{old: None}` drops.

    Classes not named keep their name. The mapped ClassMap keeps the order of
    first appearance and, for a merge, the id of the first class merged.
    """

    mapping: dict[str, str | None]

    def __post_init__(self) -> None:
        for old, new in self.mapping.items():
            if not isinstance(old, str) or not old or (new is not None and (not isinstance(new, str) or not new)):
                raise ValueError(f"class mapping {old!r}: {new!r} must map a name to a name or to null (drop)")

    def name(self, old: str) -> str | None:
        """The new name of a class, None if it is dropped."""
        return self.mapping.get(old, old)

    def apply(self, classes: ClassMap) -> ClassMap:
        out = ClassMap()
        for info in classes:
            new = self.name(info.name)
            if new is None or new in out:
                continue
            free = out.by_id(info.id) is None
            out.add(new, id=info.id if free else None, color=info.color, supercategory=info.supercategory,
                    keypoints=info.keypoints, skeleton=info.skeleton)
        return out
