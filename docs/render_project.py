#!/usr/bin/python3
"""Headless QGIS: render a scan's project.qgs as QGIS draws it, optionally at one month of its
temporal controller.

usage: render_project.py OUT/project.qgs map.png [--month YYYY-MM] [--width PX] [--tick GROUP]

Draws the project's ticked layers in the project's order, CRS and time settings, framed on its
AOI layer. With --month the map is temporal, as the temporal controller draws it at that month
(the report's polygons first detected by the end of the month); without it, every polygon is
drawn. Prints, per temporal layer, how many features the month shows, e.g.
"temporal report: 7 of 16 features by 2022-07", and the temporal rasters it draws, e.g.
"temporal rasters: 2022-07". --tick ticks a layer-panel group (e.g. the monthly composites)
before drawing.
Exit 0 drawn, 1 a layer invalid or the render failed, 2 the project unreadable.

Run with Debian's /usr/bin/python3 (python3-qgis), QT_QPA_PLATFORM=offscreen. `make demo-map`
uses it for docs/demo-map.png; tests/it/diff.rs for the temporal controller.
"""
import argparse
import calendar
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from qgis.core import (QgsApplication, QgsDateTimeRange, QgsExpression, QgsFeatureRequest,
                       QgsMapRendererParallelJob, QgsMapSettings, QgsProject,
                       QgsVectorLayerTemporalContext)
from qgis.PyQt.QtCore import QDate, QDateTime, QSize, QTime, Qt
from qgis.PyQt.QtGui import QColor

args = argparse.ArgumentParser()
args.add_argument("project")
args.add_argument("png")
args.add_argument("--month")
args.add_argument("--width", type=int, default=1600)
args.add_argument("--tick", action="append", default=[])
a = args.parse_args()

qgs = QgsApplication([], False)
qgs.initQgis()
project = QgsProject.instance()
rc = 0
if not project.read(a.project):
    print("PROJECT UNREADABLE:", project.error())
    rc = 2
else:
    for name in a.tick:
        group = project.layerTreeRoot().findGroup(name)
        if group is None:
            print("NO GROUP", name)
            rc = 1
        else:
            group.setItemVisibilityChecked(True)
    layers = project.layerTreeRoot().checkedLayers()
    for layer in project.mapLayers().values():
        if not layer.isValid():
            print("INVALID", layer.name(), layer.source())
            rc = 1
    ms = QgsMapSettings()
    ms.setLayers(layers)
    ms.setDestinationCrs(project.crs())
    ms.setTransformContext(project.transformContext())
    aoi = next(l for l in project.mapLayers().values() if l.id() == "compound_watch_aoi")
    extent = ms.layerToMapCoordinates(aoi, aoi.extent())
    extent.scale(1.04)
    ms.setExtent(extent)
    height = round(a.width * extent.height() / extent.width())
    ms.setOutputSize(QSize(a.width, height))
    ms.setBackgroundColor(QColor("white"))
    if a.month:
        year, month = (int(p) for p in a.month.split("-"))
        last = calendar.monthrange(year, month)[1]
        begin = QDateTime(QDate(year, month, 1), QTime(0, 0), Qt.UTC)
        end = QDateTime(QDate(year, month, last), QTime(23, 59, 59), Qt.UTC)
        frame = QgsDateTimeRange(begin, end)
        ms.setIsTemporal(True)
        ms.setTemporalRange(frame)
        context = QgsVectorLayerTemporalContext()
        for layer in project.mapLayers().values():
            props = layer.temporalProperties()
            if layer.type() != 0 or not props.isActive():
                continue
            context.setLayer(layer)
            expression = props.createFilterString(context, frame)
            shown = sum(1 for _ in layer.getFeatures(QgsFeatureRequest(QgsExpression(expression))))
            print(f"temporal {layer.id().removeprefix('compound_watch_')}: "
                  f"{shown} of {layer.featureCount()} features by {a.month}")
        rasters = [l.name() for l in layers if l.type() == 1 and l.temporalProperties().isActive()
                   and l.temporalProperties().isVisibleInTemporalRange(frame)]
        print("temporal rasters:", " ".join(sorted(rasters)))
    job = QgsMapRendererParallelJob(ms)
    job.start()
    job.waitForFinished()
    for e in job.errors():
        print("render error:", e.layerID, e.message)
        rc = 1
    image = job.renderedImage()
    if image.save(a.png, "png"):
        print("saved", a.png, image.width(), "x", image.height())
    else:
        print("SAVE FAILED", a.png)
        rc = 1
    del job, layers, aoi
project.clear()
qgs.exitQgis()
sys.exit(rc)
