from sdaanet.data.index import build_index


def test_build_index_filters_by_split_and_area():
    areas = [
        {1: 100, 7: 10},  # 1 kept, 7 too small
        {7: 64},  # kept (boundary)
        {2: 63},  # nothing kept
        {1: 64, 3: 500},  # 3 is not in the class list
        {7: 200, 2: 5},  # 2 only as a small candidate
        {2: 90},
    ]
    index = build_index(areas, [1, 2, 7], 64)
    assert index.queries == (0, 1, 3, 4, 5)
    assert index.class_images == {1: (0, 3), 2: (5,), 7: (1, 4)}
    # candidates: every class of the list present (any area) that has images
    assert index.query_classes == ((1, 7), (7,), (1,), (2, 7), (2,))
    strict = build_index(areas, [1, 2, 7], 64, strict_query_classes=True)
    assert strict.query_classes == ((1,), (7,), (1,), (7,), (2,))
