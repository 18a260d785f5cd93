"""Open napari with the synthetic sample stack and both napari-emseg widgets (`make run`)."""

import napari


def main() -> None:
    viewer = napari.Viewer(title="napari-emseg")
    viewer.open_sample("napari-emseg", "synthetic_em")
    viewer.window.add_plugin_dock_widget("napari-emseg", "Segment and propagate")
    viewer.window.add_plugin_dock_widget("napari-emseg", "Proofread")
    napari.run()


if __name__ == "__main__":
    main()
